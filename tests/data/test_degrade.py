import numpy as np
import pytest
from media import texture
from PIL import Image

from videoboost.config import DegradeConfig
from videoboost.data.degrade import degrade, downscale, mod_crop, upscale_bicubic


@pytest.mark.parametrize("scale", [2, 3, 4, 5])
def test_shapes_for_every_scale(scale):
    hr = mod_crop(texture(61, 83), scale)
    lr = degrade(hr, DegradeConfig(scale=scale))
    assert lr.shape == (hr.shape[0] // scale, hr.shape[1] // scale, 3)
    assert lr.dtype == np.uint8
    assert upscale_bicubic(lr, scale).shape == hr.shape


def test_default_is_antialiased_bicubic():
    hr = texture(64, 64)
    expected = np.asarray(Image.fromarray(hr).resize((16, 16), Image.Resampling.BICUBIC))
    assert np.array_equal(degrade(hr, DegradeConfig(scale=4)), expected)


def test_antialiasing_matters_on_fine_stripes():
    # 1-px stripes alias into a pattern without antialiasing; antialiased shrink gives ~grey.
    hr = np.zeros((64, 64, 3), np.uint8)
    hr[:, ::2] = 255
    lr = downscale(hr, 4)
    assert lr.std() < 10 and abs(float(lr.mean()) - 127.5) < 10


def test_area_option_differs_from_bicubic():
    hr = texture(64, 64)
    area = degrade(hr, DegradeConfig(scale=4, method="area"))
    assert area.shape == (16, 16, 3)
    assert not np.array_equal(area, degrade(hr, DegradeConfig(scale=4)))


def test_random_degradations_are_seeded():
    hr = texture(64, 64)
    cfg = DegradeConfig(scale=2, blur_sigma=1.0, noise_sigma=5.0, jpeg_quality=50)
    a = degrade(hr, cfg, np.random.default_rng(1))
    b = degrade(hr, cfg, np.random.default_rng(1))
    c = degrade(hr, cfg, np.random.default_rng(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, degrade(hr, DegradeConfig(scale=2)))


def test_size_not_multiple_of_scale_is_refused():
    with pytest.raises(ValueError, match="multiple of scale"):
        degrade(texture(30, 30), DegradeConfig(scale=4))


def test_mod_crop_keeps_aspect_and_top_left():
    img = texture(50, 75)
    cropped = mod_crop(img, 4)
    assert cropped.shape == (48, 72, 3)
    assert np.array_equal(cropped, img[:48, :72])
