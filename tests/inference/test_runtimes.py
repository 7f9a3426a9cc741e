"""The other runtimes (OpenVINO, ONNX Runtime) give the Keras generator's outputs within float
rounding, for several frame sizes from one converted model."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import tiny_generator

from videoboost.config import EngineConfig
from videoboost.evaluation.metrics import psnr_y
from videoboost.inference.engine import Upscaler, keras_predict

SIZES = [(1, 12, 20), (2, 9, 31), (1, 40, 24)]


@pytest.fixture(scope="module")
def generator():
    return tiny_generator(scale=4, seed=2)


def _convert(kind: str, gen):
    from videoboost.inference import runtimes

    if kind == "openvino":
        pytest.importorskip("openvino")
        return runtimes.openvino_predict(runtimes.openvino_model(gen), threads=2)
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    return runtimes.onnx_predict(runtimes.onnx_model(gen), threads=2)


@pytest.mark.parametrize("kind", ["openvino", "onnx"])
def test_runtime_matches_keras_for_any_size(generator, kind):
    ref = keras_predict(generator)
    other = _convert(kind, generator)
    rng = np.random.default_rng(0)
    for shape in SIZES:
        lr = rng.uniform(0, 255, (*shape, 3)).astype(np.float32)
        want, got = ref(lr), other(lr)
        assert got.shape == want.shape == (shape[0], shape[1] * 4, shape[2] * 4, 3)
        assert np.abs(got - want).max() < 0.01  # grey levels
    # Through the engine (uint8 out, tiles): the same picture, PSNR delta far below 0.05 dB.
    image = rng.integers(0, 256, (44, 60, 3), dtype=np.uint8)
    cfg = EngineConfig(tile=24, overlap=4)
    a = Upscaler(ref, 4, cfg).upscale_image(image)
    b = Upscaler(other, 4, cfg).upscale_image(image)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # rounding of a float tie at most
    assert psnr_y(a, b, 4) > 60
