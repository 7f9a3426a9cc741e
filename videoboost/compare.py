"""Side-by-side pictures of SR results (LR | bicubic | ours | HR), for MLflow and the README."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from videoboost.degrade import upscale_bicubic


def detailed_crop(hr: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the ``side`` x ``side`` window of ``hr`` with the most fine detail.

    Detail = mean absolute Laplacian of the grey image; windows are tried on a grid of half
    the side, so the choice is deterministic. A flat wall shows no difference between models.
    """
    h, w = hr.shape[:2]
    side = min(side, h, w)
    grey = cv2.cvtColor(hr, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    step = max(side // 2, 1)
    ys = sorted({*range(0, h - side + 1, step), h - side})
    xs = sorted({*range(0, w - side + 1, step), w - side})
    scores = [(float(energy[y : y + side, x : x + side].mean()), -y, -x) for y in ys for x in xs]
    _, y, x = max(scores)
    return -y, -x


def side_by_side(
    panels: Sequence[tuple[str, np.ndarray]],
    crop: int = 192,
    corner: tuple[int, int] | None = None,
) -> np.ndarray:
    """Labelled panels of the same crop, side by side, RGB uint8.

    Args:
        panels: ``(label, image)`` pairs, every image ``(H, W, 3)`` uint8 of the same size
            (e.g. bicubic, candidate, champion, ground truth).
        crop: side of the crop in pixels (clamped to the image).
        corner: ``(y, x)`` of the crop (e.g. from :func:`detailed_crop`); None = centre.
    """
    h, w = panels[0][1].shape[:2]
    side = min(crop, h, w)
    y0, x0 = corner if corner is not None else ((h - side) // 2, (w - side) // 2)
    gap = np.full((side + 20, 4, 3), 255, np.uint8)
    tiles: list[np.ndarray] = []
    for label, img in panels:
        if img.shape[:2] != (h, w):
            raise ValueError(f"panel {label!r} is {img.shape[:2]}, expected {(h, w)}")
        tile = np.full((side + 20, side, 3), 255, np.uint8)
        tile[20:] = img[y0 : y0 + side, x0 : x0 + side]
        cv2.putText(tile, label, (2, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        tiles += [tile, gap]
    return np.concatenate(tiles[:-1], axis=1)


def comparison_image(
    lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, crop: int = 192, label: str = "VideoBoost"
) -> np.ndarray:
    """LR (nearest) | bicubic | ``sr`` | HR on the most detailed crop of ``hr``.

    Args:
        lr: ``(h, w, 3)`` uint8 input; sr, hr: ``(h*s, w*s, 3)`` uint8.
        crop: HR-pixel side of the crop.
    """
    s = hr.shape[0] // lr.shape[0]
    nearest = cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_NEAREST)
    panels = [
        ("LR (nearest)", nearest),
        ("bicubic", upscale_bicubic(lr, s)),
        (label, sr),
        ("HR", hr),
    ]
    return side_by_side(panels, crop, detailed_crop(hr, crop))
