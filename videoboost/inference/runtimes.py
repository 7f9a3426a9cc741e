"""Inference runtimes other than TensorFlow for a Keras generator: OpenVINO and ONNX Runtime.

Each converter takes the Keras generator (the training framework's model, which stays the
source of truth) and returns an artefact of that runtime; each ``*_predict`` wraps an artefact
as a :data:`videoboost.inference.engine.Predict`. All keep batch, height and width open, like
:func:`videoboost.inference.engine.keras_predict`. The libraries are imported only when called.

See ``bench/runtime.py`` and the README ("Inference runtimes") for what each one measured.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from videoboost.inference.engine import Predict


def _channels(generator) -> int:
    """Input channels: 3, or a video-tier window's ``3 * (2k + 1)`` (stacked aligned frames)."""
    inputs = getattr(generator, "inputs", None)
    return int(inputs[0].shape[-1] or 3) if inputs else 3


def _traced(generator) -> Any:
    import tensorflow as tf

    spec = tf.TensorSpec([None, None, None, _channels(generator)], tf.float32, name="lr")
    return tf.function(lambda lr: generator(lr, training=False), input_signature=[spec])


def openvino_model(generator) -> Any:
    """The generator as an ``openvino.Model`` (converted from its traced TF graph)."""
    import openvino as ov

    return ov.convert_model(_traced(generator))


OPENVINO_XML = "generator.xml"


def save_openvino(generator, folder: str | Path) -> Path:
    """Write the generator as OpenVINO IR into ``folder`` (``generator.xml`` + ``.bin``).

    Weights stay float32 (``compress_to_fp16=False``; OpenVINO's default would halve them to
    fp16, a precision nobody measured). The precision used at inference is chosen when the
    model is compiled (:func:`openvino_predict`). Returns the ``.xml`` path.
    """
    import openvino as ov

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / OPENVINO_XML
    ov.save_model(openvino_model(generator), str(xml), compress_to_fp16=False)
    return xml


def save_openvino_model(model: Any, folder: str | Path) -> Path:
    """Write an ``openvino.Model`` (e.g. from :func:`quantize_openvino`) as IR into ``folder``."""
    import openvino as ov

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / OPENVINO_XML
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def openvino_predict(model: Any, *, precision: str = "f32", threads: int | None = None) -> Predict:
    """Compile an OpenVINO model (or a path to its ``.xml``) for the CPU.

    Args:
        model: ``openvino.Model``, a path to its ``.xml`` or a folder from
            :func:`save_openvino`.
        precision: ``INFERENCE_PRECISION_HINT``: ``f32``, or ``bf16`` (needs a CPU with bf16
            units; OpenVINO picks bf16 by default on such CPUs, so f32 is set explicitly).
        threads: ``INFERENCE_NUM_THREADS``; None = OpenVINO's choice.
    """
    import openvino as ov

    if isinstance(model, str | Path) and Path(model).is_dir():
        model = Path(model) / OPENVINO_XML
    core = ov.Core()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(str(model) if isinstance(model, Path) else model, "CPU", config)
    local = threading.local()  # an infer request is not safe to share between threads

    def predict(batch: np.ndarray) -> np.ndarray:
        req = getattr(local, "req", None)
        if req is None:
            req = local.req = compiled.create_infer_request()
        return np.array(req.infer([np.ascontiguousarray(batch, np.float32)])[0], np.float32)

    predict.compiled = compiled
    return predict


def picture_path_ops(model: Any) -> list[str]:
    """Names of the ops that carry the picture itself rather than the learned residual.

    From the input to the first convolutions (which read the picture), and from the last
    convolutions to the output (the bicubic skip, its sum with the residual, the pixel
    shuffle, the scaling to [0, 255]). At 8 bits these cost ~0.5 dB: one quantiser step is
    about a grey level of the whole picture, where in the trunk it is a fraction of a small
    residual. Kept in float, the int8 trunk loses ~0.01 dB (README, Inference runtimes).
    """

    def walk(start: str, step) -> set[str]:
        stack = [op for op in model.get_ordered_ops() if op.get_type_name() == start]
        seen: set[str] = set()
        while stack:
            op = stack.pop()
            name = op.get_friendly_name()
            if name in seen:
                continue
            seen.add(name)
            if op.get_type_name() != "Convolution":
                stack.extend(step(op))
        return seen

    forward = walk(
        "Parameter",
        lambda op: [t.get_node() for out in op.outputs() for t in out.get_target_inputs()],
    )
    backward = walk("Result", lambda op: [i.get_source_output().get_node() for i in op.inputs()])
    return sorted(forward | backward)


def quantize_openvino(model: Any, frames: list[np.ndarray]) -> Any:
    """NNCF post-training int8 of an ``openvino.Model``: the trunk in int8, the picture path in
    float (:func:`picture_path_ops`). ``frames``: calibration batches ``(1, h, w, c)`` float32
    in [0, 255] (``c`` the model's input channels: aligned windows for the video tier), from
    training footage, never the benchmark."""
    import logging

    import nncf

    logging.getLogger("nncf").setLevel(logging.WARNING)  # one INFO line per skipped op
    return nncf.quantize(
        model,
        nncf.Dataset(frames),
        subset_size=len(frames),
        ignored_scope=nncf.IgnoredScope(names=picture_path_ops(model), validate=False),
    )


def onnx_model(generator, *, opset: int = 17) -> bytes:
    """The generator as a serialised ONNX model (tf2onnx from its traced TF graph)."""
    import tensorflow as tf
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(
        tf.function(lambda lr: generator(lr, training=False)),
        input_signature=[
            tf.TensorSpec([None, None, None, _channels(generator)], tf.float32, name="lr")
        ],
        opset=opset,
    )
    return proto.SerializeToString()


def onnx_predict(model: bytes | str, *, threads: int | None = None) -> Predict:
    """An ONNX Runtime CPU session over ``model`` (bytes or a path)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, np.float32)
        return np.asarray(session.run(None, {name: x})[0], np.float32)

    predict.session = session
    return predict
