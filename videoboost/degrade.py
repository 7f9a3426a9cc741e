"""Making the low-res input from a high-res frame.

Default is the SR benchmark convention (DIV2K, Set5): antialiased bicubic, as MATLAB's
``imresize``; Pillow's BICUBIC resize matches it within a grey level. OpenCV's INTER_CUBIC does
not antialias when shrinking, and a model trained on one downscale loses up to 2 dB on the other.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from videoboost.config import DegradeConfig


def mod_crop(hr: np.ndarray, scale: int) -> np.ndarray:
    """Crop ``(H, W, C)`` so both sides are multiples of ``scale`` (top-left anchored)."""
    h, w = hr.shape[:2]
    return hr[: h - h % scale, : w - w % scale]


def resize_bicubic(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Antialiased bicubic resize of an RGB uint8 image (Pillow, MATLAB convention)."""
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))


def downscale(hr: np.ndarray, scale: int, method: str = "bicubic") -> np.ndarray:
    """Shrink a mod-cropped HR frame ``(H, W, 3)`` uint8 by ``scale``."""
    h, w = hr.shape[:2]
    size = (w // scale, h // scale)
    if method == "area":
        return cv2.resize(hr, size, interpolation=cv2.INTER_AREA)
    return resize_bicubic(hr, *size)


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline every metric is compared against: ``(h, w, 3)`` -> ``(h*s, w*s, 3)``."""
    h, w = lr.shape[:2]
    return resize_bicubic(lr, w * scale, h * scale)


def degrade(
    hr: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Make the LR input for a HR frame.

    Args:
        hr: ``(H, W, 3)`` uint8 RGB, sides multiples of ``cfg.scale`` (see :func:`mod_crop`).
        cfg: degradation settings.
        rng: source of the random degradations; pass a seeded one for reproducible datasets.

    Returns:
        ``(H/s, W/s, 3)`` uint8 RGB.
    """
    if hr.shape[0] % cfg.scale or hr.shape[1] % cfg.scale:
        raise ValueError(f"HR size {hr.shape[:2]} is not a multiple of scale {cfg.scale}")
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    img = hr
    if cfg.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), cfg.blur_sigma)
    lr = downscale(img, cfg.scale, cfg.method)
    if cfg.noise_sigma > 0:
        noisy = lr.astype(np.float32) + rng.normal(0, cfg.noise_sigma, lr.shape).astype(np.float32)
        lr = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if cfg.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", lr[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG re-compression failed")
        lr = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(lr)
