"""Throughput on the benchmark: frames per second producing a 1280x720 output.

``bench_fps_720p``, the only score that is not deterministic (see
:mod:`videoboost.evaluation.benchmark`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from videoboost.config import BenchmarkConfig
from videoboost.data.align import align_stack
from videoboost.inference.engine import Upscaler

OUTPUT_720P = (720, 1280)  # (height, width) of the throughput measurement's output


def frame_720p(upscaler: Upscaler) -> Callable[[], None]:
    """One 1280x720-output frame's work, for timing: a fixed pseudo-random LR frame (speed does
    not depend on content for a convolutional net). A video-tier frame costs its model call
    plus aligning its 2k neighbours (moved copies, so the flow has motion to find): the steady
    per-frame cost of a stream."""
    s = upscaler.scale
    h, w = OUTPUT_720P[0] // s, OUTPUT_720P[1] // s
    lr = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    neighbours = [np.roll(lr, (d, 2 * d), (0, 1)) for d in range(1, 2 * upscaler.window + 1)]

    def one() -> None:
        if upscaler.window:
            upscaler.upscale_stack(align_stack(lr, neighbours))
        else:
            upscaler.upscale_image(lr)

    return one


def measure_fps(
    upscaler: Upscaler, cfg: BenchmarkConfig = BenchmarkConfig()
) -> tuple[float, dict[str, Any]] | None:
    """Frames per second producing a 1280x720 output: median of timed runs after warm-up.

    The input is ``(720 // s) x (1280 // s)`` LR pixels, a fixed pseudo-random frame (speed does
    not depend on content for a convolutional net). Returns None when ``cfg.fps_runs`` is 0.
    """
    if cfg.fps_runs == 0:
        return None
    s = upscaler.scale
    h, w = OUTPUT_720P[0] // s, OUTPUT_720P[1] // s
    one = frame_720p(upscaler)
    for _ in range(cfg.fps_warmup):
        one()
    seconds = []
    for _ in range(cfg.fps_runs):
        t0 = time.perf_counter()
        one()
        seconds.append(time.perf_counter() - t0)
    info = {
        "input": f"{w}x{h}",
        "output": f"{w * s}x{h * s}",
        "warmup": cfg.fps_warmup,
        "seconds": [round(x, 5) for x in seconds],
    }
    return 1.0 / statistics.median(seconds), info
