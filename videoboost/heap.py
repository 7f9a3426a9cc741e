"""Keeping a long-running video job's memory flat under glibc."""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def limit_heap_retention(threshold: int = 1 << 20) -> bool:
    """Make glibc serve allocations of ``threshold`` bytes or more from mmap (process-wide).

    glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after
    which decoded and upscaled frames come from the heap, which it keeps: RSS then climbed
    segment after segment of a long video (263 -> 690 MB over 5 segments of 720p output
    without the model; 1107 -> 1407 MB with it) although nothing was leaked. A fixed
    threshold returns each frame's memory when it is freed (flat at 276 / ~1120 MB). Returns
    False where there is no glibc ``mallopt`` (other C libraries), which changes nothing.
    """
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


__all__ = ["limit_heap_retention"]
