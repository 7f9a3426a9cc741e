"""Property test of the engine: any image a caller may hand it, through ``prepare_image`` and
``Upscaler`` with a tiny Keras model.

Random sizes (1x1, odd, tall and thin, above the tile size and the pixel budget), dtypes
(uint8, uint16, int32, float32/float64 in [0, 1], bool, signed and out-of-range data, NaN) and
channel layouts (H x W, 1 to 5 channels, 1-D and 4-D): a valid image always comes out
``(H*s, W*s, 3)`` uint8, equal to the model's output rounded and clipped (the random model
overshoots [0, 255]: it must be clipped, never wrapped); anything else raises the project's
InvalidImage or ImageTooLarge before the model runs, never another exception.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from videoboost.config import EngineConfig
from videoboost.inference.engine import (
    ImageTooLarge,
    InvalidImage,
    Upscaler,
    keras_predict,
    prepare_image,
)

SCALES = (2, 3, 4)
BUDGET = 6_000  # pixels
TILED = EngineConfig(tile=32, overlap=4, batch=3, max_input_pixels=BUDGET)
WHOLE = EngineConfig(tile=0, batch=3, max_input_pixels=BUDGET)


@pytest.fixture(scope="module")
def models():
    """Per scale: conv 3x3 -> 3*s*s channels with random weights, then pixel shuffle. Fully
    convolutional with open height and width, so one traced graph serves every size."""
    keras = pytest.importorskip("keras")
    from models.layers import PixelShuffle

    out = {}
    for s in SCALES:
        keras.utils.set_random_seed(s)
        model = keras.Sequential(
            [
                keras.Input((None, None, 3)),
                keras.layers.Conv2D(3 * s * s, 3, padding="same", kernel_initializer="he_normal"),
                PixelShuffle(s),
            ]
        )
        predict = keras_predict(model)
        calls: list[tuple] = []

        def counted(batch, predict=predict, calls=calls):
            calls.append(batch.shape)
            return predict(batch)

        out[s] = (counted, predict, calls)
    return out


SIZES = st.one_of(
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.sampled_from([(1, 1), (1, 97), (97, 1), (2, 150), (33, 31), (45, 70), (77, 77), (80, 90)]),
)
DTYPES = ["uint8", "uint16", "int32", "float32", "float64", "bool", "int16-signed", "float-255"]
CHANNELS = [None, 1, 2, 3, 4]


def _image(rng: np.random.Generator, h: int, w: int, dtype: str, channels: int | None):
    shape = (h, w) if channels is None else (h, w, channels)
    if dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == "uint16":
        return rng.integers(0, 65536, shape, dtype=np.uint16)
    if dtype == "int32":
        return rng.integers(0, 256, shape).astype(np.int32)
    if dtype in ("float32", "float64"):
        return rng.random(shape).astype(dtype)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype == "int16-signed":
        return rng.integers(-300, 300, shape).astype(np.int16)
    return rng.random(shape).astype(np.float32) * 255  # float in [0, 255]: refused, not guessed


def _expected_rgb(a: np.ndarray) -> np.ndarray:
    """The documented conversion, written out independently of prepare_image."""
    x = a[:, :, None] if a.ndim == 2 else a
    if x.shape[2] in (2, 4):
        x = x[:, :, :-1]  # alpha dropped
    if x.dtype == np.uint16:
        x = x >> 8
    elif x.dtype.kind == "f":
        x = np.rint(np.clip(x, 0, 1) * 255)
    x = x.astype(np.uint8)
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def _valid(a: np.ndarray) -> bool:
    if a.dtype == np.bool_ or a.ndim not in (2, 3) or (a.ndim == 3 and not 1 <= a.shape[2] <= 4):
        return False
    if a.dtype.kind == "f":
        return bool(np.isfinite(a).all() and a.min() >= -1 / 255 and a.max() <= 1 + 1 / 255)
    return bool(a.min() >= 0 and a.max() <= 255) or a.dtype in (np.uint8, np.uint16)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    size=SIZES,
    dtype=st.sampled_from(DTYPES),
    channels=st.sampled_from(CHANNELS),
    scale=st.sampled_from(SCALES),
    tiled=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_image_comes_out_at_scale_or_is_refused_clearly(
    models, size, dtype, channels, scale, tiled, seed
):
    h, w = size
    img = _image(np.random.default_rng(seed), h, w, dtype, channels)
    counted, predict, calls = models[scale]
    up = Upscaler(counted, scale, TILED if tiled else WHOLE)
    calls.clear()
    if h * w > BUDGET:
        event("refused: too large")
        with pytest.raises(ImageTooLarge, match=str(BUDGET)):
            up.upscale_image(img)
        assert calls == []
        return
    if not _valid(img):
        event("refused: invalid")
        with pytest.raises(InvalidImage):
            up.upscale_image(img)
        assert calls == []
        return
    lr = prepare_image(img)
    np.testing.assert_array_equal(lr, _expected_rgb(img))
    sr = up.upscale_image(img)
    assert sr.shape == (h * scale, w * scale, 3) and sr.dtype == np.uint8
    event("upscaled, tiled" if tiled and max(h, w) > TILED.tile else "upscaled, whole")
    if not (tiled and max(h, w) > TILED.tile):  # one model call: exact rounding and clipping
        raw = predict(lr[None].astype(np.float32))[0]
        np.testing.assert_array_equal(sr, np.clip(np.rint(raw), 0, 255).astype(np.uint8))
        if raw.min() < 0 or raw.max() > 255:
            event("model output outside [0, 255], clipped")
    # The stream path (two equal frames share one model call) agrees with the single path.
    frames = list(up.upscale_frames([img, img]))
    assert [f.shape for f in frames] == [sr.shape] * 2
    assert np.abs(frames[0].astype(int) - sr).max() <= 1  # a batch of 2 may round differently


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    shape=st.lists(st.integers(0, 6), min_size=0, max_size=5).map(tuple),
    dtype=st.sampled_from(["uint8", "float32", "int64", "complex64", "U1", "O", "bool"]),
)
def test_odd_shapes_and_dtypes_raise_invalid_image_only(shape, dtype):
    """Empty, 1-D, 4-D, 0 or 5+ channels, strings, objects, complex: InvalidImage or a valid
    image, nothing else (no IndexError, TypeError, numpy casting error...)."""
    a = np.zeros(shape, dtype=dtype)
    try:
        rgb = prepare_image(a)
    except InvalidImage:
        ok = len(shape) in (2, 3) and 0 not in shape[:2]
        ok = (
            ok
            and (len(shape) == 2 or 1 <= shape[2] <= 4)
            and dtype in ("uint8", "float32", "int64")
        )
        assert not ok, f"refused a valid {dtype} image of shape {shape}"
    else:
        assert rgb.shape == (*shape[:2], 3) and rgb.dtype == np.uint8
