"""Synthetic footage for tests: textured, moving, so flow, duplicates and splits mean something."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour texture, RGB uint8 ``(h, w, 3)``: detail at several scales."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.float32)
    for cell, weight in ((4, 0.5), (16, 0.3), (64, 0.2)):
        small = rng.random((max(2, h // cell), max(2, w // cell), 3)).astype(np.float32)
        out += weight * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out * 255, 0, 255).astype(np.uint8)


def moving_frames(
    n: int, h: int = 96, w: int = 128, seed: int = 0, static: int = 0
) -> list[np.ndarray]:
    """``n`` RGB frames: a texture panning right with a disc moving across it.

    The first ``static`` frames repeat frame 0 exactly (a static shot).
    """
    base = texture(h, w * 2, seed)
    frames = []
    for i in range(n):
        t = max(0, i - static + 1) if static else i
        frame = np.ascontiguousarray(base[:, 2 * t % w : 2 * t % w + w])
        cv2.circle(frame, (int(10 + 3 * t) % w, h // 2), h // 6, (240, 40, 40), -1)
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """Write RGB frames with ``cv2.VideoWriter`` (lossless-ish MJPG in .avi, mp4v in .mp4)."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_clip(path: Path, n: int = 24, h: int = 96, w: int = 128, seed: int = 0, **kw) -> Path:
    return write_video(path, moving_frames(n, h, w, seed, **kw))
