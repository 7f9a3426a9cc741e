"""Image-quality metrics, SR conventions: Y channel (ITU-R BT.601), ``scale`` px border shaved.

All images are RGB ``(H, W, 3)`` in [0, 255] (uint8 or float).
"""

from __future__ import annotations

import cv2
import numpy as np


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Luma as MATLAB's ``rgb2ycbcr`` (range [16, 235]), float64 ``(H, W)``."""
    x = rgb.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def _shave(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border > 0 else img


def _pair_y(a: np.ndarray, b: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    return _shave(rgb_to_y(a), border), _shave(rgb_to_y(b), border)


def psnr_y(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """PSNR in dB on Y; ``inf`` for identical images."""
    ya, yb = _pair_y(a, b, border)
    mse = float(np.mean((ya - yb) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim_y(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """SSIM on Y with an 11x11 Gaussian window (sigma 1.5), as BasicSR and the SR papers."""
    ya, yb = _pair_y(a, b, border)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        # "valid" region only, like BasicSR: border pixels of the window are not scored.
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    mu_a, mu_b = blur(ya), blur(yb)
    var_a = blur(ya * ya) - mu_a**2
    var_b = blur(yb * yb) - mu_b**2
    cov = blur(ya * yb) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(ssim_map.mean())


def flicker(outputs: list[np.ndarray], truths: list[np.ndarray], border: int = 0) -> float:
    """Temporal instability: mean |Δoutput - Δtruth| on Y over consecutive frames (lower is better).

    A model that reproduces the ground truth scores 0; one that adds per-frame noise scores more,
    even if its per-frame PSNR is fine.
    """
    if len(outputs) != len(truths):
        raise ValueError("outputs and truths must have the same length")
    if len(outputs) < 2:
        raise ValueError("flicker needs at least two consecutive frames")
    diffs = []
    prev_o = prev_t = None
    for o, t in zip(outputs, truths, strict=True):
        yo, yt = _pair_y(o, t, border)
        if prev_o is not None:
            diffs.append(float(np.mean(np.abs((yo - prev_o) - (yt - prev_t)))))
        prev_o, prev_t = yo, yt
    return float(np.mean(diffs))
