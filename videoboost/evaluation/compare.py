"""Side-by-side pictures of SR results (LR | bicubic | ours | HR), for MLflow and the README.

Made to be read at 1:1 pixels: a few small detail crops, each enlarged with nearest-neighbour
(so the pixels a model invented stay visible instead of being smoothed by the viewer), one row
per crop, with a header of labels in a font tall enough to read without zooming. MLflow's image
slider shows thumbnails; its artifact view shows these files at full size.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from videoboost.data.degrade import upscale_bicubic

GAP = 4  # white pixels between panels and rows
LABEL_PX = 18  # label font size: legible at 1:1 (MLflow shows artifacts unscaled)


def _energy(hr: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(hr, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.abs(cv2.Laplacian(grey, cv2.CV_32F))


def detail_corners(hr: np.ndarray, side: int, n: int = 1) -> list[tuple[int, int]]:
    """Top-left corners of up to ``n`` non-overlapping ``side`` x ``side`` windows of ``hr``
    with the most fine detail, most detailed first.

    Detail = mean absolute Laplacian of the grey image; windows are tried on a grid of half
    the side, so the choice is deterministic. A flat wall shows no difference between models.
    Fewer than ``n`` come back when the frame has no room for more without overlap.
    """
    h, w = hr.shape[:2]
    side = min(side, h, w)
    energy = _energy(hr)
    step = max(side // 2, 1)
    ys = sorted({*range(0, h - side + 1, step), h - side})
    xs = sorted({*range(0, w - side + 1, step), w - side})
    scores = sorted(
        ((float(energy[y : y + side, x : x + side].mean()), -y, -x) for y in ys for x in xs),
        reverse=True,
    )
    picked: list[tuple[int, int]] = []
    for _, ny, nx in scores:
        y, x = -ny, -nx
        if all(abs(y - py) >= side or abs(x - px) >= side for py, px in picked):
            picked.append((y, x))
            if len(picked) == n:
                break
    return picked


def detailed_crop(hr: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the ``side`` x ``side`` window of ``hr`` with the most fine detail."""
    return detail_corners(hr, side, 1)[0]


def _label_row(labels: Sequence[str], width: int) -> np.ndarray:
    """A white strip with each label centred over its ``width``-pixel column."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=LABEL_PX)
    height = LABEL_PX + 10
    strip = Image.new("RGB", (len(labels) * (width + GAP) - GAP, height), "white")
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        text = label
        # Shorten rather than overlap the next column.
        while len(text) > 3 and draw.textlength(text, font=font) > width - 4:
            text = text[:-2] + "…"
        x = i * (width + GAP) + (width - draw.textlength(text, font=font)) / 2
        draw.text((x, 4), text, fill="black", font=font)
    return np.asarray(strip)


def side_by_side(
    panels: Sequence[tuple[str, np.ndarray]],
    crop: int = 112,
    corner: tuple[int, int] | None = None,
    *,
    corners: Sequence[tuple[int, int]] | None = None,
    zoom: int = 1,
) -> np.ndarray:
    """Labelled panels of the same crop(s), side by side, RGB uint8.

    One header row of labels, then one row per crop; every panel of a row shows the same
    window of its image.

    Args:
        panels: ``(label, image)`` pairs, every image ``(H, W, 3)`` uint8 of the same size
            (e.g. bicubic, candidate, champion, ground truth).
        crop: side of the crop in image pixels (clamped to the image).
        corner: ``(y, x)`` of a single crop (e.g. from :func:`detailed_crop`); None = centre.
        corners: several crops, one row each (e.g. from :func:`detail_corners`); wins over
            ``corner``.
        zoom: nearest-neighbour enlargement of every crop (2 = each pixel a 2x2 block).
    """
    h, w = panels[0][1].shape[:2]
    side = min(crop, h, w)
    for label, img in panels:
        if img.shape[:2] != (h, w):
            raise ValueError(f"panel {label!r} is {img.shape[:2]}, expected {(h, w)}")
    if not corners:
        corners = [corner if corner is not None else ((h - side) // 2, (w - side) // 2)]
    cell = side * zoom
    rows = [_label_row([label for label, _ in panels], cell)]
    for y0, x0 in corners:
        tiles = []
        for _, img in panels:
            tile = img[y0 : y0 + side, x0 : x0 + side]
            if zoom > 1:
                tile = cv2.resize(tile, (cell, cell), interpolation=cv2.INTER_NEAREST)
            tiles += [tile, np.full((cell, GAP, 3), 255, np.uint8)]
        rows += [np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)]
        rows.append(np.concatenate(tiles[:-1], axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def comparison_image(
    lr: np.ndarray,
    sr: np.ndarray,
    hr: np.ndarray,
    crop: int = 112,
    label: str = "VideoBoost",
    *,
    crops: int = 3,
    zoom: int = 2,
) -> np.ndarray:
    """LR (nearest) | bicubic | ``sr`` | HR on the ``crops`` most detailed crops of ``hr``.

    The defaults (three 112-px crops at 2x) give a ~910 x 720 picture that is legible at 1:1,
    the way MLflow's artifact view shows it.

    Args:
        lr: ``(h, w, 3)`` uint8 input; sr, hr: ``(h*s, w*s, 3)`` uint8.
        crop: HR-pixel side of each crop.
        label: the column of ``sr``.
        crops: how many crops (rows); fewer when the frame has no room for them.
        zoom: nearest-neighbour enlargement of each crop.
    """
    s = hr.shape[0] // lr.shape[0]
    nearest = cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_NEAREST)
    panels = [
        ("LR", nearest),
        ("bicubic", upscale_bicubic(lr, s)),
        (label, sr),
        ("HR", hr),
    ]
    return side_by_side(panels, crop, corners=detail_corners(hr, crop, crops), zoom=zoom)
