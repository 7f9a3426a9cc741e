"""Held-out evaluation: a fixed, versioned benchmark set and the scores of a model on it.

The benchmark is whole frames that no dataset uses. By default: ``BenchmarkConfig.frames``
frames of ``data/sample/bikes.mp4``, taken as ``segments`` runs of consecutive frames spread
evenly over the clip (consecutive, so flicker can be measured; spread, so a static opening shot
does not make the whole benchmark), and every still of ``data/sample/stills/`` (``make run``
trains on ``bigbuckbunny.mp4`` only). HR frames are mod-cropped to the scale, and the LR input is made with
:func:`videoboost.data.degrade.degrade` (antialiased bicubic), so the bicubic baseline and the model
see the same frames.

**Tracks** (``BenchmarkConfig.tracks``): the same frames as different kinds of input. ``clean``
is the shrink above; ``h264_crfNN`` codes that shrink with libx264 at CRF NN (yuv420p; a video's
runs of consecutive frames as clips, so P/B-frames are scored as in a real file; a still as one
frame); ``jpeg_qNN`` codes it as JPEG at quality NN; ``video`` is the video sources alone, each
run coded as an H.264 clip at CRF 23 and scored clip by clip (``bench_psnr_gain_video``): what
a video-tier model, which sees each frame's neighbours, is for; single-frame models score on the
same frames. It stays out of ``bench_psnr_mean`` (the H.264 tracks already hold those frames).
Every track is scored against bicubic of the
same (coded) input. The clean track keeps the historical keys (``bench_psnr_gain``, ...); a coded
track adds its name (``bench_psnr_gain_h264_crf30``, ...), and ``bench_psnr_mean`` /
``bench_psnr_gain_mean`` average over all tracks (what promotion compares).

The benchmark's version is a content hash of the sources (bytes, not paths), the degradation,
the tracks and the frame selection. A built benchmark is cached under ``<state>/benchmarks/<version>/``, so two
evaluations with the same version score exactly the same pixels.

Scores (keys as logged to MLflow, see :data:`METRIC_KEYS`), each the mean over sources (every
source weighs the same, one long clip does not dominate):

* ``bench_psnr`` / ``bench_ssim``: Y channel, ``scale`` px border shaved; a frame identical to the
  ground truth counts as :data:`PSNR_CAP` dB so means stay finite;
* ``bench_psnr_bicubic`` / ``bench_ssim_bicubic`` and ``bench_psnr_gain`` (model - bicubic);
* ``bench_flicker`` / ``bench_flicker_bicubic``: :func:`videoboost.evaluation.metrics.flicker` over the
  consecutive frames of each video (lower is better; absent when no source is a video);
* ``bench_fps_720p``: frames per second producing a 1280x720 output through the tiling
  :class:`~videoboost.inference.engine.Upscaler`, median of timed runs after warm-up (the only score
  that is not deterministic).

This module is plain Python + NumPy/OpenCV; TensorFlow is imported only by
:func:`evaluate_keras`, MLflow never (see :mod:`videoboost.mlops.registry`).

The parts: :mod:`~videoboost.evaluation.bench_set` builds and caches the set (footage, runs,
coded tracks), :mod:`~videoboost.evaluation.bench_scores` holds the keys, the per-track scoring
and the :class:`Report`, :mod:`~videoboost.evaluation.bench_timing` measures throughput; this
module scores a model on all of it and re-exports their public names. Import from here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from videoboost.config import BenchmarkConfig, EngineConfig
from videoboost.data.degrade import upscale_bicubic
from videoboost.evaluation.bench_scores import (
    METRIC_KEYS,
    Report,
    _mean,
    score_outputs,
    track_key,
    track_metrics,
    tracks_of,
)
from videoboost.evaluation.bench_scores import PSNR_CAP as PSNR_CAP
from videoboost.evaluation.bench_set import (
    CLEAN,
    DEFAULT_SOURCES,
    VIDEO,
    BenchItem,
    Benchmark,
    benchmark_version,
    build_benchmark,
    plan_runs,
)
from videoboost.evaluation.bench_set import FORMAT_VERSION as FORMAT_VERSION
from videoboost.evaluation.bench_set import TRACK_CODINGS as TRACK_CODINGS
from videoboost.evaluation.bench_set import code_track as code_track
from videoboost.evaluation.bench_timing import OUTPUT_720P as OUTPUT_720P
from videoboost.evaluation.bench_timing import frame_720p as frame_720p
from videoboost.evaluation.bench_timing import measure_fps
from videoboost.evaluation.compare import detail_corners, side_by_side
from videoboost.inference.engine import Predict, Upscaler


def _sample_track(tracks: Sequence[str]) -> str:
    """The track the comparison image shows: H.264 at CRF 30 (what a low-bitrate file looks
    like) when scored, else the first coded track, else clean."""
    if "h264_crf30" in tracks:
        return "h264_crf30"
    return next((t for t in tracks if t != CLEAN), CLEAN)


def _sample_index(bench: Benchmark) -> int:
    """The item the comparison image shows: the first video, else the first still."""
    for i, item in enumerate(bench.items):
        if item.kind == "video":
            return i
    return 0


def _item_outputs(upscaler: Upscaler, item: BenchItem) -> list[np.ndarray]:
    """A model's outputs for one source: a video's runs as clips (a video-tier model then sees
    each frame's neighbours), a still (or any source for a single-frame model) frame by frame."""
    if upscaler.window and item.kind == "video":
        return [sr for r in item.run_slices() for sr in upscaler.upscale_frames(item.lr[r])]
    return [upscaler.upscale_image(lr) for lr in item.lr]


def evaluate(
    predict: Predict,
    scale: int,
    bench: Benchmark,
    cfg: BenchmarkConfig = BenchmarkConfig(),
    *,
    model: str = "",
    version: str | None = None,
    engine: EngineConfig = EngineConfig(),
    window: int = 0,
) -> Report:
    """Score a ``predict`` function on the benchmark, whole frames through the tiling engine.

    A video-tier model (``window`` k > 0) sees each video run as a clip, every frame with its
    aligned neighbours (the run's ends replicate), and a still as a repeated frame; its 720p
    throughput includes the alignment of ``2k`` neighbours per frame.

    Args:
        predict: ``(N, h, w, 3)`` float32 RGB in [0, 255] -> ``(N, h*s, w*s, 3)`` float32
            (see :data:`videoboost.inference.engine.Predict`).
        scale: the model's factor; must equal ``bench.scale``.
        bench: from :func:`build_benchmark`.
        cfg: throughput settings.
        model, version: what is evaluated, for the report.
        engine: tiling settings (the defaults are the ones serving uses).

    Returns:
        The :class:`Report`.
    """
    if scale != bench.scale:
        raise ValueError(f"the model is x{scale} but the benchmark is x{bench.scale}")
    upscaler = Upscaler(predict, scale, engine, window=window)
    metrics: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    track_rows: dict[str, list[dict[str, Any]]] = {}
    outputs_of: dict[str, list[list[np.ndarray]]] = {}
    for track in bench.tracks:
        view = bench.track(track)
        if not view.items:  # the video track of a benchmark of stills
            continue
        outputs = [_item_outputs(upscaler, item) for item in view.items]
        scores, per_source = score_outputs(view, outputs)
        metrics.update({track_key(key, track): v for key, v in scores.items()})
        if track == CLEAN:
            rows = per_source
        else:
            track_rows[track] = per_source
        outputs_of[track] = outputs
    averaged = [t for t in bench.tracks if t != VIDEO]
    metrics["bench_psnr_mean"] = _mean([metrics[track_key("bench_psnr", t)] for t in averaged])
    metrics["bench_psnr_gain_mean"] = _mean(
        [metrics[track_key("bench_psnr_gain", t)] for t in averaged]
    )
    fps_info: dict[str, Any] = {}
    measured = measure_fps(upscaler, cfg)
    if measured is not None:
        metrics["bench_fps_720p"], fps_info = measured
    k = _sample_index(bench)
    shown = _sample_track([t for t in bench.tracks if t != VIDEO])
    item = bench.track(shown).items[k]
    sample = {
        "lr": item.lr[0],
        "hr": item.hr[0],
        "bicubic": upscale_bicubic(item.lr[0], scale),
        "sr": outputs_of[shown][k][0],
    }
    return Report(
        model=model,
        version=version,
        scale=scale,
        benchmark=bench.describe(),
        metrics=metrics,
        sources=rows,
        fps=fps_info,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        sample=sample,
        track_sources=track_rows,
        sample_track=shown,
    )


def evaluate_keras(
    generator: Any,
    bench: Benchmark,
    cfg: BenchmarkConfig = BenchmarkConfig(),
    *,
    model: str = "",
    version: str | None = None,
) -> Report:
    """:func:`evaluate` for a Keras generator (the project's I/O contract: [0, 255] in and out)."""
    from videoboost.inference.engine import infer_scale, infer_window, keras_predict, set_tf_threads

    set_tf_threads(cfg.threads)
    return evaluate(
        keras_predict(generator),
        infer_scale(generator),
        bench,
        cfg,
        model=model,
        version=version,
        window=infer_window(generator),
    )


# --------------------------------------------------------------------------- comparison image


def comparison(
    report: Report,
    *extra: tuple[str, np.ndarray],
    label: str | None = None,
    crop: int = 112,
    crops: int = 3,
    zoom: int = 2,
) -> np.ndarray:
    """bicubic | this report's model | ``extra`` panels | ground truth, on the ``crops`` most
    detailed crops, enlarged ``zoom`` times (legible at 1:1 in MLflow's artifact view)."""
    s = report.sample
    coded = "" if report.sample_track == CLEAN else f" of {report.sample_track}"
    panels = [
        (f"bicubic{coded}", s["bicubic"]),
        (label or report.label, s["sr"]),
        *extra,
        ("ground truth", s["hr"]),
    ]
    return side_by_side(panels, crop, corners=detail_corners(s["hr"], crop, crops), zoom=zoom)


__all__ = [
    "DEFAULT_SOURCES",
    "METRIC_KEYS",
    "BenchItem",
    "Benchmark",
    "Report",
    "benchmark_version",
    "build_benchmark",
    "comparison",
    "evaluate",
    "evaluate_keras",
    "measure_fps",
    "plan_runs",
    "score_outputs",
    "track_key",
    "track_metrics",
    "tracks_of",
]
