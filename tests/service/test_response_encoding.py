"""The service's answer encodings decode to the picture that was encoded: PNG exactly, at
every compression level; JPEG and WebP close, and closer at a higher quality."""

from __future__ import annotations

import io

import numpy as np
import pytest
from media import texture
from PIL import Image

from videoboost.inference.images import RESPONSE_FORMATS, encode_image


def _decoded(data: bytes, fmt: str) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.format == fmt.upper()  # the bytes are what the media type says
    return np.asarray(img.convert("RGB")).astype(int)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a - b) ** 2)))


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_png_is_lossless_at_every_compression_level(level):
    rgb = texture(90, 160, seed=1)
    assert np.array_equal(_decoded(encode_image(rgb, "png", compression=level), "png"), rgb)


def test_png_level_0_stores_and_the_others_compress():
    rgb = texture(90, 160, seed=2)
    stored, *packed = (len(encode_image(rgb, "png", compression=lv)) for lv in (0, 1, 9))
    assert stored > rgb.size  # raw pixels plus headers: no compression at all
    assert all(size < 0.9 * stored for size in packed)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lossy_formats_are_close_and_quality_matters(fmt):
    rgb = texture(96, 160, seed=3)
    low = encode_image(rgb, fmt, quality=30)
    high = encode_image(rgb, fmt, quality=95)
    psnr_low, psnr_high = _psnr(_decoded(low, fmt), rgb), _psnr(_decoded(high, fmt), rgb)
    assert psnr_high > 32  # visually close to the upscaled frame
    assert psnr_high > psnr_low + 3
    assert len(high) > len(low)
    assert len(high) < len(encode_image(rgb, "png"))  # smaller than the lossless answer


def test_every_format_has_a_media_type_and_unknown_ones_are_refused():
    assert set(RESPONSE_FORMATS) == {"png", "jpeg", "webp"}
    with pytest.raises(ValueError, match="unknown image format 'gif'"):
        encode_image(texture(8, 8), "gif")
