"""The runtime candidates: which this host can run, how each is built, which the benchmark refuses.

Part of :mod:`videoboost.evaluation.runtime_select` (the table of candidates is in its
docstring), which re-exports these names. TensorFlow and OpenVINO are imported when a candidate
is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from videoboost.errors import VideoBoostError
from videoboost.evaluation.runtime_probe import model_key, probe_frames
from videoboost.host import Host, detect_host
from videoboost.inference.engine import Predict

RUNTIMES = ("tf-f32", "tf-bf16", "ov-f32", "ov-bf16", "ov-int8")
PRECISION = {
    "tf-f32": "float32",
    "tf-bf16": "bfloat16",
    "ov-f32": "float32",
    "ov-bf16": "bfloat16",
    "ov-int8": "int8",
}
REFERENCE = "tf-f32"


class RuntimeUnavailable(VideoBoostError):
    """A runtime that was asked for cannot run on this host or with this model."""

    exit_code = 2


def _config_of(generator):
    """The :class:`GeneratorConfig` a generator was built from, read off its layers."""
    from videoboost.config import GeneratorConfig
    from videoboost.inference.engine import infer_scale, infer_window

    names = {layer.name for layer in generator.layers}
    scale = infer_scale(generator)
    k = infer_window(generator)
    if k:  # the video tier: a fast or quality trunk (named as theirs) over 3 * (2k + 1) inputs
        trunk = _config_of_trunk(generator, names, scale)
        return GeneratorConfig(tier="video", scale=scale, window=k, trunk=trunk.tier,
                               filters=trunk.filters, blocks=trunk.blocks)  # fmt: skip
    return _config_of_trunk(generator, names, scale)


def _config_of_trunk(generator, names: set[str], scale: int):
    from videoboost.config import GeneratorConfig

    if "conv0" in names:  # the fast tier: conv0, then conv1..convN
        blocks = sum(1 for n in names if n.startswith("conv") and n[4:].isdigit()) - 1
        return GeneratorConfig(
            tier="fast", scale=scale, filters=generator.get_layer("conv0").filters, blocks=blocks
        )
    if "head" in names:
        blocks = sum(1 for n in names if n.startswith("block") and n.endswith("_conv1"))
        return GeneratorConfig(
            tier="quality", scale=scale, filters=generator.get_layer("head").filters, blocks=blocks
        )
    raise RuntimeUnavailable("tf-bf16: a generator of an old layout; retrain it in today's layout")


def bf16_twin(generator):
    """The same weights in a model built under ``mixed_bfloat16`` (bf16 compute, f32 variables).

    A clone would keep each layer's recorded float32 policy, so the twin is built afresh.
    """
    import keras

    from models.networks import build_generator

    cfg = _config_of(generator)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        twin = build_generator(cfg)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    twin.set_weights(generator.get_weights())
    return twin


def openvino_capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin reports (``FP32``, ``BF16``, ``INT8``...); () without it."""
    try:
        import openvino as ov

        return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # not installed, or no CPU plugin
        return ()


def supported(
    host: Host, *, ov_caps: Iterable[str] | None = None, int8_model: Any = None
) -> dict[str, str | None]:
    """Each runtime name -> None when this host can run it, else why not."""
    caps = set(openvino_capabilities() if ov_caps is None else ov_caps)
    out: dict[str, str | None] = {"tf-f32": None}
    out["tf-bf16"] = None if host.bf16 else f"{host.kind}: no bf16 units (avx512_bf16 or AMX)"
    out["ov-f32"] = None if "FP32" in caps else "OpenVINO is not installed"
    if not caps:
        out["ov-bf16"] = "OpenVINO is not installed"
    elif "BF16" not in caps or not host.bf16:
        out["ov-bf16"] = f"OpenVINO reports {sorted(caps)}: no BF16 on this CPU"
    else:
        out["ov-bf16"] = None
    # Without a quantised model at hand, one is made here (NNCF, :func:`int8_model_for`).
    out["ov-int8"] = None if caps or int8_model is not None else "OpenVINO is not installed"
    return out


def builders(
    generator, *, threads: int | None = None, int8_model: Any = None, ov_model: Any = None
) -> dict[str, Callable[[], Predict]]:
    """name -> a function that builds that runtime's predict (nothing is built yet).

    ``ov_model``: the generator already converted to an ``openvino.Model`` (conversion takes
    seconds), else it is converted when an OpenVINO runtime is first built.
    """
    from videoboost.inference import runtimes
    from videoboost.inference.engine import keras_predict

    ov_model = [] if ov_model is None else [ov_model]

    def openvino(precision: str) -> Predict:
        if not ov_model:
            ov_model.append(runtimes.openvino_model(generator))
        return runtimes.openvino_predict(ov_model[0], precision=precision, threads=threads)

    return {
        "tf-f32": lambda: keras_predict(generator),
        "tf-bf16": lambda: keras_predict(bf16_twin(generator)),
        "ov-f32": lambda: openvino("f32"),
        "ov-bf16": lambda: openvino("bf16"),
        "ov-int8": lambda: runtimes.openvino_predict(
            int8_model if int8_model is not None else int8_model_for(generator), threads=threads
        ),
    }


def calibration_frames(
    n: int = 8, size: tuple[int, int] = (320, 180), *, window: int = 0
) -> list[np.ndarray]:
    """``n`` LR frames of the bundled sample clip (training footage, not the benchmark); for a
    video-tier model (``window`` k) each is an aligned window of its neighbours."""
    return probe_frames(size[1], size[0], n=n, every=7, offset=0, window=window)


def int8_model_for(generator, folder: Path | None = None) -> Path:
    """The NNCF int8 OpenVINO IR of ``generator``: made once per weights, kept in the state
    folder (``<state>/runtime/int8/<model key>/``). Returns its ``.xml``."""
    from videoboost import state
    from videoboost.inference import runtimes
    from videoboost.inference.engine import infer_window

    folder = folder or state.home() / "runtime" / "int8" / model_key(generator)
    xml = folder / runtimes.OPENVINO_XML
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    frames = calibration_frames(window=infer_window(generator))
    quantised = runtimes.quantize_openvino(runtimes.openvino_model(generator), frames)
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    runtimes.save_openvino_model(quantised, tmp)
    try:
        tmp.replace(folder)  # whole or not at all: a concurrent maker may have won
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return xml


# The most a runtime may lose against tf-f32 on the held-out benchmark (PSNR on Y), the
# issue's bar for every tier.
MAX_LOSS_DB = 0.1


def benchmark_fidelity(
    generator,
    *,
    frames: int = 2,
    threads: int | None = None,
    host: Host | None = None,
    int8_model: Any = None,
    ov_model: Any = None,
) -> dict[str, dict[str, Any]]:
    """Every runtime this host supports on the held-out benchmark, against tf-f32.

    ``ov_model``: the generator as an ``openvino.Model``, when the caller converted it already.

    Returns:
        name -> ``{"psnr", "delta_db", "ok"}`` (``ok``: at most :data:`MAX_LOSS_DB` below
        tf-f32), or ``{"ok": False, "error"}`` for one that does not build. ``_benchmark``
        holds the benchmark's version and size. Done once per model version (``bento build``);
        a runtime with ``ok`` False is then never chosen for it.
    """
    from videoboost.config import BenchmarkConfig
    from videoboost.evaluation.benchmark import build_benchmark, evaluate
    from videoboost.inference.engine import infer_scale, infer_window

    scale = infer_scale(generator)
    window = infer_window(generator)
    # The clean track only: a runtime's agreement with tf-f32 is a property of its arithmetic,
    # and the coded tracks would quadruple the time of every `bento build` for no new fact.
    cfg = BenchmarkConfig(frames=frames, segments=min(2, frames), fps_runs=0, tracks=("clean",))
    bench = build_benchmark(scale, cfg=cfg)
    why_not = supported(host or detect_host(), int8_model=int8_model)
    every = builders(generator, threads=threads, int8_model=int8_model, ov_model=ov_model)
    out: dict[str, dict[str, Any]] = {}
    for name, build in every.items():
        if why_not[name] is not None:
            continue
        try:
            # A video model sees the benchmark clip's runs as windows, stills repeated.
            psnr = evaluate(build(), scale, bench, cfg, window=window).metrics["bench_psnr"]
        except Exception as exc:
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:160]}"}
            continue
        out[name] = {"psnr": round(float(psnr), 4)}
    ref = out[REFERENCE]["psnr"]
    for row in out.values():
        if "psnr" in row:
            row["delta_db"] = round(row["psnr"] - ref, 4)
            row["ok"] = row["delta_db"] >= -MAX_LOSS_DB
    out["_benchmark"] = {"version": bench.version, "frames_per_video": frames}
    return out


def refused_by_tag(tag: str | None) -> dict[str, str]:
    """The runtimes a registry version's ``runtime_fidelity`` tag (JSON) rules out."""
    try:
        table = json.loads(tag or "{}")
    except ValueError:
        return {}
    rows = {k: v for k, v in table.items() if isinstance(v, dict)}
    return {k: f"failed the benchmark check ({why})" for k, why in refused_by(rows).items()}


def refused_by(fidelity: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The runtimes a :func:`benchmark_fidelity` result rules out, with why."""
    refused = {}
    for name, row in fidelity.items():
        if name.startswith("_") or row.get("ok", True):
            continue
        refused[name] = row.get("error") or (
            f"{row['delta_db']:+.3f} dB against tf-f32 on the benchmark, over {MAX_LOSS_DB} dB"
        )
    return refused
