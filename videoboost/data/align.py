"""Windows of neighbouring frames, aligned to their centre frame: the video tier's input.

The video tier sees ``2k + 1`` consecutive low-res frames at once. Each neighbour is warped onto
the centre frame with OpenCV's DIS optical flow, computed on the low-res grey frames (cheap:
about 4 ms a pair at 320x180 on one core), so the network only has to fuse pixels that already
sit on top of each other (VESPCN's early fusion, with a classical aligner instead of a learned
one: it costs no training time and works from the first step).

A window is stacked along channels, centre first: ``(h, w, 3 * (2k + 1))`` uint8, channels
``[centre, t-1, t+1, t-2, t+2, ...]``, so ``stack[..., :3]`` is always the frame being upscaled
(the network's bicubic skip reads it).

Where a neighbour does not exist, the nearest frame on that side that does is used instead
(replicate): at the first and last frames of a clip, and at a scene cut, which is detected from
the pair of frames alone (:func:`is_cut`). Because every decision depends only on the frames
within ``k`` of the centre, a clip cut into segments gives the same windows as one pass as long
as each segment is handed ``k`` frames of context on either side (:func:`iter_windows`).

Plain NumPy/OpenCV: no TensorFlow here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

import cv2
import numpy as np

__all__ = [
    "CUT_MAD",
    "align_stack",
    "align_to",
    "flow_between",
    "is_cut",
    "iter_windows",
    "stack_window",
    "still_window",
    "window_channels",
    "window_indices",
    "window_of_channels",
]

# DIS "medium": 3.8 ms a 320x180 pair against 1.3 ms for "fast", and a better fit on the
# benchmark clip's fine texture; the model's own time dwarfs both.
FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
# A pair is a scene cut when either test says so (grey levels, mean absolute difference):
# - CUT_MAD, on 32x32 thumbnails: cheap, catches cuts that change the whole picture (the
#   benchmark clip's five cuts measure 44-81; its frames within a shot stay under 30);
# - CUT_RESIDUAL, after aligning the pair with the flow at most 160 px wide: catches a cut
#   between two shots of the same look, which thumbnails average alike (two textures: 24).
#   Within a shot it stays small: at most 10 on the benchmark clip (fast bikes), 3.8 on Big
#   Buck Bunny, 1.8 on the street camera; across its cuts 41-82.
CUT_MAD = 30.0
CUT_RESIDUAL = 15.0
_THUMB = 32
_CUT_SIDE = 160


def window_channels(k: int) -> int:
    """Input channels of a window of ``k`` neighbours a side."""
    return 3 * (2 * k + 1)


def window_of_channels(channels: int) -> int:
    """``k`` of a window stacked into ``channels`` channels (3 = a single frame, k = 0)."""
    if channels % 3 or (channels // 3) % 2 == 0:
        raise ValueError(f"{channels} channels is not a window of 2k+1 RGB frames")
    return (channels // 3 - 1) // 2


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _thumb(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(_grey(rgb), (_THUMB, _THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


def _warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``img`` sampled where ``flow`` points (bilinear); outside pixels take the nearest edge
    pixel (no black borders)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


def _residual(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey difference left after aligning ``b`` onto ``a`` (at most 160 px)."""
    ga, gb = _grey(a), _grey(b)
    h, w = ga.shape
    f = min(1.0, _CUT_SIDE / max(h, w))
    if f < 1:
        size = (max(8, round(w * f)), max(8, round(h * f)))
        ga = cv2.resize(ga, size, interpolation=cv2.INTER_AREA)
        gb = cv2.resize(gb, size, interpolation=cv2.INTER_AREA)
    warped = _warp(gb, flow_between(ga, gb))
    m = 2 if min(ga.shape) > 8 else 0
    return float(cv2.absdiff(ga, warped)[m : ga.shape[0] - m, m : ga.shape[1] - m].mean())


def is_cut(a: np.ndarray, b: np.ndarray, threshold: float = CUT_MAD) -> bool:
    """Whether frames ``a`` and ``b`` (consecutive, uint8 RGB) belong to different shots (see
    :data:`CUT_MAD` and :data:`CUT_RESIDUAL`).

    Also true when their sizes differ (a stream that changes resolution starts over).
    """
    if a.shape != b.shape:
        return True
    if float(np.abs(_thumb(a) - _thumb(b)).mean()) > threshold:
        return True
    return _residual(a, b) > CUT_RESIDUAL


def flow_between(centre_grey: np.ndarray, other_grey: np.ndarray) -> np.ndarray:
    """``(h, w, 2)`` float32 flow: where each centre pixel is found in ``other`` (x, y)."""
    dis = cv2.DISOpticalFlow_create(FLOW_PRESET)
    return dis.calc(centre_grey, other_grey, None)


def align_to(centre: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` warped onto ``centre`` (both ``(h, w, 3)`` uint8 RGB) with DIS optical flow.

    Pixels the flow sends outside ``other`` take its nearest edge pixel (no black borders).
    """
    if other is centre or np.array_equal(other, centre):
        return centre
    return _warp(other, flow_between(_grey(centre), _grey(other)))


def _order(k: int) -> list[int]:
    """Offsets in stacking order: 0, -1, +1, -2, +2, ..."""
    return [0] + [d for j in range(1, k + 1) for d in (-j, j)]


def window_indices(n: int, i: int, k: int, cuts: Sequence[bool] | None = None) -> list[int]:
    """Frame indices of the window centred on ``i`` in a run of ``n`` frames, stacking order.

    Args:
        n, i, k: run length, centre, neighbours a side.
        cuts: ``cuts[j]`` true when a scene cut lies between frames ``j - 1`` and ``j``
            (``cuts[0]`` is ignored); None = no cuts.

    A neighbour past either end of the run or across a cut is replaced by the nearest frame on
    its side that is reachable (at worst the centre itself).
    """
    out = []
    for d in _order(k):
        j, step = i, (1 if d > 0 else -1)
        for _ in range(abs(d)):
            nxt = j + step
            if not 0 <= nxt < n or (cuts is not None and cuts[max(j, nxt)]):
                break
            j = nxt
        out.append(j)
    return out


def stack_window(frames: Sequence[np.ndarray], order: Sequence[int], centre: int) -> np.ndarray:
    """Stack ``frames[order]`` along channels, each neighbour aligned to ``frames[centre]``."""
    c = frames[centre]
    parts = [c if j == centre else align_to(c, frames[j]) for j in order]
    return np.concatenate(parts, axis=-1)


def align_stack(centre: np.ndarray, neighbours: Sequence[np.ndarray]) -> np.ndarray:
    """A window from a centre frame and its neighbours already in stacking order (-1, +1, -2,
    +2, ...; e.g. a dataset's stored ones): each neighbour aligned, all stacked, centre first."""
    return np.concatenate([centre, *(align_to(centre, n) for n in neighbours)], axis=-1)


def still_window(rgb: np.ndarray, k: int) -> np.ndarray:
    """A lone image as a window: the frame repeated ``2k + 1`` times (what a still shows)."""
    return np.concatenate([rgb] * (2 * k + 1), axis=-1) if k else rgb


def iter_windows(
    frames: Iterable[np.ndarray],
    k: int,
    *,
    before: Sequence[np.ndarray] = (),
    after: Iterable[np.ndarray] = (),
    cut_threshold: float = CUT_MAD,
) -> Iterator[np.ndarray]:
    """Aligned windows of ``frames``, in order, reading at most ``k`` frames ahead.

    Args:
        frames: consecutive ``(h, w, 3)`` uint8 RGB frames of one clip.
        k: neighbours a side (0 = the frames themselves).
        before, after: up to ``k`` frames of context just before and after ``frames`` (a
            segment's neighbours in the whole clip); used as neighbours, never yielded. With
            them, a segment's windows equal those of one pass over the whole clip. ``after``
            is read (its first ``k`` frames only) once ``frames`` is exhausted.
        cut_threshold: see :func:`is_cut`.

    Yields:
        One ``(h, w, 3 * (2k + 1))`` uint8 window per frame of ``frames``.
    """
    if k == 0:
        yield from frames
        return
    before = list(before)[-k:] if before else []
    buf: list[np.ndarray] = list(before)  # frames held, oldest first
    cuts: list[bool] = [False] * len(buf)  # cuts[j]: a cut between buf[j-1] and buf[j]
    for j in range(1, len(buf)):
        cuts[j] = is_cut(buf[j - 1], buf[j], cut_threshold)
    first = len(buf)  # buffer index of the next centre to yield
    limit = None  # buffer index where the yielded frames end (set once frames are exhausted)

    def push(frame: np.ndarray) -> None:
        cuts.append(bool(buf) and is_cut(buf[-1], frame, cut_threshold))
        buf.append(frame)

    def emit(i: int) -> np.ndarray:
        return stack_window(buf, [j for j in window_indices(len(buf), i, k, cuts)], i)

    for frame in frames:
        push(frame)
        while first + k < len(buf):  # the centre's k following frames are in
            yield emit(first)
            first += 1
            drop = max(0, first - k)  # keep k frames before the next centre
            if drop:
                del buf[:drop], cuts[:drop]
                first -= drop
    limit = len(buf)
    for frame in itertools.islice(after, k):
        push(frame)
    while first < limit:
        yield emit(first)
        first += 1
