"""Tiled, batched inference: shapes, seams, input normalisation, laziness, output planning."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from videoboost.config import EngineConfig
from videoboost.inference.engine import (
    ImageTooLarge,
    InvalidImage,
    PostProcess,
    Upscaler,
    _tile_starts,
    apply_postprocess,
    keras_predict,
    plan_output,
    prepare_image,
    resize_to_height,
)

SMALL_TILES = EngineConfig(tile=16, overlap=4, batch=3)
NO_TILES = EngineConfig(tile=0, batch=3)


def resize_predict(scale: int, interpolation: int = cv2.INTER_NEAREST, calls: list | None = None):
    """A stand-in model: per-image OpenCV resize, (N, h, w, 3) float32 -> (N, h*s, w*s, 3)."""

    def predict(batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.float32 and batch.ndim == 4 and batch.shape[3] == 3
        if calls is not None:
            calls.append(batch.shape)
        return np.stack(
            [
                cv2.resize(img, None, fx=scale, fy=scale, interpolation=interpolation)
                for img in batch
            ]
        )

    return predict


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("size", [(1, 1), (7, 5), (16, 16), (17, 16), (33, 47), (20, 61)])
def test_output_shape_is_input_times_scale(size, scale):
    h, w = size
    for config in (SMALL_TILES, NO_TILES):
        sr = Upscaler(resize_predict(scale), scale, config).upscale_image(_image(h, w))
        assert sr.shape == (h * scale, w * scale, 3) and sr.dtype == np.uint8


def test_tiled_equals_untiled_for_a_pointwise_model():
    lr = _image(45, 70)
    calls: list = []
    tiled = Upscaler(resize_predict(3, calls=calls), 3, SMALL_TILES).upscale_image(lr)
    whole = Upscaler(resize_predict(3), 3, NO_TILES).upscale_image(lr)
    np.testing.assert_array_equal(tiled, whole)
    # 4 x 6 tiles of 16x16, in batches of at most 3.
    assert all(shape[1:] == (16, 16, 3) and shape[0] <= 3 for shape in calls)
    assert sum(shape[0] for shape in calls) == 4 * 6


def test_tiled_matches_untiled_keras_conv_model_away_from_seams():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.UpSampling2D(2),
            keras.layers.Conv2D(3, 3, padding="same"),
        ]
    )
    predict = keras_predict(model)
    # A smooth-ish image keeps the conv output inside [0, 255], so clipping hides nothing.
    lr = cv2.GaussianBlur(_image(30, 44, seed=1), (0, 0), 2) // 2 + 64
    tiled = Upscaler(predict, 2, SMALL_TILES).upscale_image(lr).astype(int)
    whole = Upscaler(predict, 2, NO_TILES).upscale_image(lr).astype(int)
    assert tiled.shape == whole.shape == (60, 88, 3)

    # Zero padding corrupts only the outermost HR pixel of each tile; mask 2 px at each tile edge.
    near_seam = np.zeros((60, 88), bool)
    for axis, length in ((0, 30), (1, 44)):
        for start in _tile_starts(length, 16, 4):
            for edge in (start * 2, (start + 16) * 2):
                sl = [slice(None), slice(None)]
                sl[axis] = slice(max(edge - 2, 0), edge + 2)
                near_seam[tuple(sl)] = True
    diff = np.abs(tiled - whole)
    assert diff[~near_seam].max() <= 1  # rounding only
    assert diff.mean() < 0.5  # the feathering keeps the seams themselves close too
    # One trace serves every tile and frame size.
    Upscaler(predict, 2, SMALL_TILES).upscale_image(_image(9, 13))
    assert predict.run.experimental_get_tracing_count() == 1


def test_output_is_clipped_and_rounded():
    def wild(batch):
        out = np.repeat(np.repeat(batch, 2, axis=1), 2, axis=2)
        out[:, 0] = -40.0
        out[:, 1] = 300.0
        out[:, 2] = 99.5
        return out

    sr = Upscaler(wild, 2, NO_TILES).upscale_image(_image(4, 4))
    assert (sr[0] == 0).all() and (sr[1] == 255).all() and (sr[2] == 100).all()


def test_predict_with_wrong_scale_is_reported():
    with pytest.raises(ValueError, match="scale"):
        Upscaler(resize_predict(2), 4, NO_TILES).upscale_image(_image(8, 8))


def test_input_normalisation():
    rgb = _image(10, 12)
    grey = rgb[:, :, 0]
    as_grey = np.repeat(grey[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(prepare_image(grey), as_grey)
    np.testing.assert_array_equal(prepare_image(grey[:, :, None]), as_grey)
    np.testing.assert_array_equal(prepare_image(np.dstack([grey, grey])), as_grey)  # grey + alpha
    rgba = np.dstack([rgb, np.full((10, 12), 7, np.uint8)])
    np.testing.assert_array_equal(prepare_image(rgba), rgb)  # alpha dropped
    wide = (rgb.astype(np.uint16) << 8) | 0xAB
    np.testing.assert_array_equal(prepare_image(wide), rgb)
    np.testing.assert_array_equal(prepare_image(rgb / 255.0), rgb)
    np.testing.assert_array_equal(prepare_image(rgb.astype(np.float32) / 255), rgb)
    np.testing.assert_array_equal(prepare_image(rgb.astype(np.int64)), rgb)
    up = Upscaler(resize_predict(2), 2, SMALL_TILES)
    assert up.upscale_image(grey).shape == (20, 24, 3)
    assert up.upscale_image(rgba).shape == (20, 24, 3)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((0, 5, 3), np.uint8),
        np.zeros((5, 0), np.uint8),
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((2, 4, 4, 3), np.uint8),
        np.zeros(7, np.uint8),
        np.full((4, 4, 3), np.nan, np.float32),
        np.full((4, 4, 3), 200.0),  # float outside [0, 1]
        np.full((4, 4, 3), 300, np.int32),
        np.ones((4, 4, 3), bool),
        np.full((4, 4, 3), "x"),
    ],
    ids=["0-rows", "0-cols", "5-ch", "4-d", "1-d", "nan", "float-255", "int-300", "bool", "str"],
)
def test_invalid_images_are_rejected(bad):
    calls: list = []
    with pytest.raises(InvalidImage):
        Upscaler(resize_predict(2, calls=calls), 2).upscale_image(bad)
    assert calls == []


def test_too_large_input_fails_before_predict():
    calls: list = []
    up = Upscaler(resize_predict(2, calls=calls), 2, EngineConfig(max_input_pixels=100))
    with pytest.raises(ImageTooLarge, match="100"):
        up.upscale_image(_image(11, 10))
    with pytest.raises(ImageTooLarge):
        list(up.upscale_frames([_image(5, 5), _image(11, 10)]))
    assert up.upscale_image(_image(10, 10)).shape == (20, 20, 3)
    assert calls == [(1, 10, 10, 3)]


def test_upscale_frames_is_lazy_and_keeps_order():
    pulled = 0
    sizes = [(6, 8)] * 5 + [(4, 4)] + [(6, 8)] + [(20, 40)] + [(6, 8)] * 2

    def source():
        nonlocal pulled
        for i, (h, w) in enumerate(sizes):
            pulled += 1
            yield np.full((h, w, 3), i * 10, np.uint8)

    calls: list = []
    up = Upscaler(resize_predict(2, calls=calls), 2, EngineConfig(tile=16, overlap=4, batch=2))
    stream = up.upscale_frames(source())
    first = next(stream)
    assert pulled <= 2  # never reads more than one batch ahead
    outputs = [first, *stream]
    assert pulled == len(sizes) == len(outputs)
    for i, ((h, w), sr) in enumerate(zip(sizes, outputs, strict=True)):
        assert sr.shape == (2 * h, 2 * w, 3)
        assert (sr == i * 10).all()
    assert max(shape[0] for shape in calls) == 2


def test_upscale_frames_stops_when_the_consumer_stops():
    def endless():
        while True:
            yield _image(4, 4)

    stream = Upscaler(resize_predict(2), 2, EngineConfig(batch=3)).upscale_frames(endless())
    assert len([next(stream) for _ in range(7)]) == 7


def test_plan_output_notes():
    assert plan_output(180, 320, 4, None) == (720, 1280, "model x4: 320x180 -> 1280x720")
    assert plan_output(180, 320, 4, 720)[:2] == (720, 1280)
    h, w, note = plan_output(180, 320, 4, 1080)
    assert (h, w) == (1080, 1920)
    assert "more than the model's x4" in note and "Lanczos" in note and "x1.5" in note
    h, w, note = plan_output(180, 320, 4, 480)
    assert (h, w) == (480, 854) and "downscaled" in note and "smaller than the input" not in note
    h, w, note = plan_output(181, 321, 2, 100)
    assert (h, w) == (100, 178) and "smaller than the input" in note


def test_resize_to_height_keeps_aspect_with_even_width():
    img = _image(30, 41)
    assert resize_to_height(img, 90).shape == (90, 124, 3)
    assert resize_to_height(img, 15).shape == (15, 20, 3)
    same = _image(30, 40)
    assert resize_to_height(same, 30) is same


def test_engine_height_and_postprocess_options():
    up = Upscaler(resize_predict(2), 2, NO_TILES)
    lr = _image(12, 16)
    assert up.upscale_image(lr, height=36).shape == (36, 48, 3)
    assert [f.shape for f in up.upscale_frames([lr, lr], height=36)] == [(36, 48, 3)] * 2
    np.testing.assert_array_equal(
        up.upscale_image(lr, postprocess=PostProcess()), up.upscale_image(lr)
    )


def test_postprocess_off_is_identity_and_on_changes_the_image():
    img = _image(16, 16)
    assert apply_postprocess(img, PostProcess()) is img
    assert apply_postprocess(img, None) is img
    grey = np.full((16, 16, 3), 100, np.uint8)
    assert apply_postprocess(grey, PostProcess(brightness=10)).mean() == 110
    assert apply_postprocess(grey, PostProcess(contrast=2.0)).mean() == pytest.approx(72.5, abs=0.5)
    sharp = apply_postprocess(img, PostProcess(unsharp_amount=1.0))
    assert sharp.std() > img.std()
    with pytest.raises(ValueError):
        PostProcess(contrast=0)
