"""Training windows: each dataset frame's neighbours in time, degraded like the frame itself.

A dataset built with ``DatasetConfig.window = k`` stores, beside every frame, the LR of its
``2k`` neighbours (:func:`videoboost.data.shards.window_key`), so the video tier trains on real
windows and a single-frame model can train on the very same centre frames.

* **Video**: the neighbours are the clip's adjacent decoded frames (``t - k .. t + k``, whatever
  the sampling keeps as centres). A neighbour past the clip's ends, across a scene cut or in
  the other split's part of the clip is replaced by the nearest frame that is not
  (:func:`videoboost.data.align.window_indices`), exactly as inference does at clip ends and cuts,
  and no window ever reaches into the other split.
* **Stills**: synthetic motion. The HR photo is moved along a random camera path (a constant
  sub-pixel velocity plus jitter, a small rotation and zoom), one step per frame, before the
  shrink, so a corpus of photos still teaches alignment and fusion.

Each neighbour is degraded as its centre frame is: the clean shrink, and every ``real``
variant's recipe with sensor noise drawn afresh per frame (noise does not repeat in time,
which is what lets a window average it away). An H.264 variant codes the whole window as one
clip in time order, so the centre is a P/B frame predicted from real neighbours.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from videoboost.config import DegradeConfig, SamplingConfig
from videoboost.data.align import is_cut, window_indices
from videoboost.data.degrade import (
    apply_recipe,
    degrade,
    describe_recipe,
    h264_roundtrip,
    sample_recipe,
)
from videoboost.data.frames import Frame, clip_length, iter_video_frames, sample_frames

__all__ = [
    "degrade_window",
    "real_window_variants",
    "stacking_offsets",
    "synthetic_motion",
    "video_windows",
]

# Camera path of synthetic motion, per frame step: velocity and jitter in LR pixels (so the
# motion is sub-pixel to a few pixels at the LR scale, as in the shipped clips), rotation in
# degrees, zoom as a factor.
MAX_SPEED = 1.5
JITTER = 0.35
MAX_ROTATION = 0.4
MAX_ZOOM = 0.01


def stacking_offsets(k: int) -> list[int]:
    """Time offsets of the stored neighbours, in stacking order: -1, +1, -2, +2, ..."""
    return [d for j in range(1, k + 1) for d in (-j, j)]


def synthetic_motion(
    hr: np.ndarray, k: int, scale: int, rng: np.random.Generator
) -> dict[int, np.ndarray]:
    """The HR frames ``-k..k`` of a camera moving over the still ``hr`` (offset 0 is ``hr``).

    Returns:
        ``{offset: (H, W, 3) uint8}`` for every offset but 0, the same size as ``hr``.
    """
    h, w = hr.shape[:2]
    speed = rng.uniform(0, MAX_SPEED) * scale
    heading = rng.uniform(0, 2 * np.pi)
    v = np.array([np.cos(heading), np.sin(heading)]) * speed
    spin = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    zoom = rng.uniform(-MAX_ZOOM, MAX_ZOOM)
    out: dict[int, np.ndarray] = {}
    for d in stacking_offsets(k):
        shift = v * d + rng.normal(0, JITTER * scale, 2)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), spin * d, 1 + zoom * d)
        m[:, 2] += shift
        out[d] = cv2.warpAffine(
            hr, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
        )
    return out


def video_windows(
    path: str | Path,
    sampling: SamplingConfig,
    k: int,
    zone: Callable[[int], int | None],
) -> Iterator[tuple[Frame, dict[int, np.ndarray], dict[int, int]]]:
    """The sampled frames of a video, each with its neighbours in time.

    Args:
        path: the video.
        sampling: which frames are centres (as :func:`videoboost.data.frames.iter_source`).
        k: neighbours a side.
        zone: frame index -> the part of the clip it belongs to (the split), or None for
            frames no window may use (the gap between the splits). A window never crosses
            from one zone into another.

    Yields:
        ``(frame, {offset: rgb}, {offset: frame index used})`` for every offset but 0; a
        replaced neighbour repeats the nearest usable frame (possibly the centre).
    """
    held: dict[int, np.ndarray] = {}
    cut_before: dict[int, bool] = {}

    def tap() -> Iterator[Frame]:
        # Hands frames to the sampler k frames late, so a sampled centre's followers are held.
        queue: deque[Frame] = deque()
        for f in iter_video_frames(path):
            prev = held.get(f.index - 1)
            cut_before[f.index] = prev is None or is_cut(prev, f.rgb)
            held[f.index] = f.rgb
            queue.append(f)
            if len(queue) > k:
                yield queue.popleft()
        yield from queue

    for frame in sample_frames(tap(), sampling, clip_length(path, sampling)):
        i = frame.index
        for old in [j for j in held if j < i - k]:
            del held[old], cut_before[old]
        # A local run of the frames around i: breaks at cuts, zone changes and missing frames.
        lo, hi = i - k, i + k
        run = [j for j in range(lo, hi + 1)]
        breaks = [
            j == lo
            or j not in held
            or cut_before.get(j, True)
            or zone(j) is None
            or zone(j) != zone(j - 1)
            for j in run
        ]
        # Frames outside the clip are not in `held`: mark them unusable by a break before them
        # and after them (window_indices stops at any break).
        for pos, j in enumerate(run):
            if j not in held and pos + 1 < len(run):
                breaks[pos + 1] = True
        order = window_indices(len(run), k, k, breaks)
        used = {d: run[p] for d, p in zip([0, *stacking_offsets(k)], order, strict=True)}
        del used[0]
        yield frame, {d: held[j] for d, j in used.items()}, used


def degrade_window(
    hr: np.ndarray, neighbours: dict[int, np.ndarray], cfg: DegradeConfig, seed: list[int]
) -> np.ndarray:
    """The clean LR of each neighbour, ``(2k, h, w, 3)`` uint8 in stacking order."""
    k = len(neighbours) // 2
    return np.stack(
        [
            degrade(neighbours[d], cfg, np.random.default_rng([*seed, 7, d + k]))
            for d in stacking_offsets(k)
        ]
    )


def real_window_variants(
    hr: np.ndarray,
    neighbours: dict[int, np.ndarray],
    cfg: DegradeConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``cfg.real.variants`` degradations of a whole window, each from a fresh recipe.

    Returns:
        ``(centres (v, h, w, 3), neighbours (v, 2k, h, w, 3), [recipe label, ...])``, uint8.
        An H.264 recipe codes the window as one clip in time order (no synthetic P-frame
        step: the neighbours are the real ones); noise is drawn afresh for every frame.
    """
    k = len(neighbours) // 2
    times = list(range(-k, k + 1))
    frames = {0: hr, **neighbours}
    centres, stacks, labels = [], [], []
    for _ in range(cfg.real.variants):
        recipe = sample_recipe(cfg.real, rng)
        recipe.pop("h264_motion", None)
        codec = recipe.pop("h264", None)
        lrs = {}
        for t in times:
            per_frame = {**recipe, "noise_seed": recipe["noise_seed"] + 1000 * (t + k)}
            lrs[t] = apply_recipe(frames[t], cfg.scale, per_frame)
        if codec is not None:
            coded = h264_roundtrip(np.stack([lrs[t] for t in times]), codec)
            lrs = dict(zip(times, coded, strict=True))
            recipe["h264"] = codec
        centres.append(lrs[0])
        stacks.append(np.stack([lrs[d] for d in stacking_offsets(k)]))
        labels.append(describe_recipe(recipe) + ("" if codec is None else "-clip"))
    return np.stack(centres), np.stack(stacks), labels
