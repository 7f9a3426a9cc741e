"""Scores on the benchmark: the ``bench_*`` keys, each track's scores against bicubic, the report.

The keys and what they measure are described in :mod:`videoboost.evaluation.benchmark`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videoboost.data.degrade import upscale_bicubic
from videoboost.evaluation.bench_set import CLEAN, Benchmark
from videoboost.evaluation.metrics import flicker, psnr_y, ssim_y

PSNR_CAP = 100.0

METRIC_KEYS = (
    "bench_psnr",
    "bench_ssim",
    "bench_psnr_bicubic",
    "bench_ssim_bicubic",
    "bench_psnr_gain",
    "bench_flicker",
    "bench_flicker_bicubic",
    "bench_fps_720p",
)
# Per-track keys: the clean track's are METRIC_KEYS' first seven, a coded track's add its name.
_TRACK_BASES = METRIC_KEYS[:7]


def track_key(base: str, track: str) -> str:
    """The logged key of ``base`` (e.g. ``bench_psnr_gain``) on ``track``: the clean track keeps
    the historical name, a coded one adds its own (``bench_psnr_gain_h264_crf30``)."""
    return base if track == CLEAN else f"{base}_{track}"


def track_metrics(metrics: dict[str, float], track: str) -> dict[str, float]:
    """The ``bench_*`` scores of one track, under the clean track's key names."""
    return {b: metrics[track_key(b, track)] for b in _TRACK_BASES if track_key(b, track) in metrics}


def tracks_of(metrics: dict[str, float]) -> list[str]:
    """The tracks a metrics dict holds scores of, clean first."""
    coded = sorted(
        k[len("bench_psnr_gain_") :]
        for k in metrics
        if k.startswith("bench_psnr_gain_") and k != "bench_psnr_gain_mean"
    )
    return ([CLEAN] if "bench_psnr_gain" in metrics else []) + coded


def _fmt(value: float | None, digits: int = 4, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


@dataclass
class Report:
    """Scores of one model on one benchmark.

    Attributes:
        model: the URI or path that was evaluated.
        version: registry version, or None for a local file.
        scale: the model's factor.
        benchmark: :meth:`Benchmark.describe` of the benchmark used.
        metrics: :data:`METRIC_KEYS` -> value (flicker keys absent without a video source,
            ``bench_fps_720p`` absent when throughput was skipped).
        sources: per-source scores (``name``, ``frames``, ``psnr``, ``psnr_bicubic``, ...).
        fps: how throughput was measured (``input``, ``output``, ``warmup``, ``seconds``).
        created: UTC time of the evaluation.
        notes: warnings for the reader (e.g. a leak check that could not run).
        sample: ``{"lr", "hr", "bicubic", "sr"}`` uint8 arrays of one frame, for comparison
            images (not serialised); its input is from ``sample_track``.
        track_sources: per coded track, the per-source rows (as ``sources``).
        sample_track: the track the sample's input comes from (a coded one when scored).
    """

    model: str
    version: str | None
    scale: int
    benchmark: dict[str, Any]
    metrics: dict[str, float]
    sources: list[dict[str, Any]]
    fps: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    notes: list[str] = field(default_factory=list)
    sample: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    track_sources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sample_track: str = CLEAN

    @property
    def tracks(self) -> list[str]:
        """The tracks scored, clean first."""
        return tracks_of(self.metrics)

    @property
    def benchmark_version(self) -> str:
        return self.benchmark["version"]

    @property
    def label(self) -> str:
        """Short name for panels: ``v3`` for a registry version, else the file name."""
        return f"v{self.version}" if self.version else Path(self.model).name or "model"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "scale": self.scale,
            "benchmark": self.benchmark,
            "metrics": self.metrics,
            "sources": self.sources,
            "fps": self.fps,
            "created": self.created,
            "notes": self.notes,
            "tracks": self.tracks,
            "track_sources": self.track_sources,
            "sample_track": self.sample_track,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON; also written (atomically) to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text + "\n")
            tmp.replace(path)
        return text

    def table(self) -> str:
        """Per-source scores, then the logged keys with the bicubic baseline beside each."""
        m = self.metrics
        label = f"{self.model}" + (f" (version {self.version})" if self.version else "")
        lines = [
            f"{label}, x{self.scale}, on benchmark {self.benchmark_version}: "
            f"{len(self.sources)} sources, {self.benchmark['frames']} frames",
        ]
        name_w = max(8, *(len(s["name"]) for s in self.sources))
        head = (
            f"  {'source'.ljust(name_w)} {'frames':>6} {'PSNR':>8} {'bicubic':>8} {'gain':>7}"
            f" {'SSIM':>7} {'bicubic':>7} {'flicker':>8} {'bicubic':>8}"
        )
        lines.append(head)
        for s in self.sources:
            lines.append(
                f"  {s['name'].ljust(name_w)} {s['frames']:>6} {s['psnr']:>8.3f}"
                f" {s['psnr_bicubic']:>8.3f} {s['psnr'] - s['psnr_bicubic']:>+7.3f}"
                f" {s['ssim']:>7.4f} {s['ssim_bicubic']:>7.4f}"
                f" {_fmt(s.get('flicker'), 3):>8} {_fmt(s.get('flicker_bicubic'), 3):>8}"
            )
        rows = [
            ("PSNR Y (dB)", "bench_psnr", "bench_psnr_bicubic"),
            ("SSIM Y", "bench_ssim", "bench_ssim_bicubic"),
            ("flicker (lower is better)", "bench_flicker", "bench_flicker_bicubic"),
        ]
        width = max(len(r[0]) for r in rows)
        lines.append(
            f"  {'mean over sources'.ljust(width)} {'model':>9} {'bicubic':>9} {'diff':>9}"
        )
        for title, key, base in rows:
            a, b = m.get(key), m.get(base)
            diff = None if a is None or b is None else a - b
            lines.append(
                f"  {title.ljust(width)} {_fmt(a):>9} {_fmt(b):>9} {_fmt(diff, sign=True):>9}"
            )
        if len(self.tracks) > 1:
            lines.append(
                f"  {'track (each vs bicubic of its input)'.ljust(38)} {'PSNR':>8} {'bicubic':>8}"
                f" {'gain':>7} {'SSIM':>7} {'bicubic':>7} {'flicker':>8} {'bicubic':>8}"
            )
            for t in self.tracks:
                tm = track_metrics(m, t)
                lines.append(
                    f"  {t.ljust(38)} {tm['bench_psnr']:>8.3f} {tm['bench_psnr_bicubic']:>8.3f}"
                    f" {tm['bench_psnr_gain']:>+7.3f} {tm['bench_ssim']:>7.4f}"
                    f" {tm['bench_ssim_bicubic']:>7.4f} {_fmt(tm.get('bench_flicker'), 3):>8}"
                    f" {_fmt(tm.get('bench_flicker_bicubic'), 3):>8}"
                )
            lines.append(
                f"  {'mean over tracks'.ljust(38)} {m['bench_psnr_mean']:>8.3f}"
                f" {m['bench_psnr_mean'] - m['bench_psnr_gain_mean']:>8.3f}"
                f" {m['bench_psnr_gain_mean']:>+7.3f}"
            )
        if "bench_fps_720p" in m:
            lines.append(
                f"  throughput: {m['bench_fps_720p']:.2f} fps producing {self.fps['output']} "
                f"from {self.fps['input']} (median of {len(self.fps['seconds'])} runs after "
                f"{self.fps['warmup']} warm-up)"
            )
        lines.append(
            "  logged keys: "
            + ", ".join(f"{k}={m[k]:.4f}" for k in METRIC_KEYS if k in m)
            + (", bench_psnr_gain_<track> and bench_psnr_gain_mean" if len(self.tracks) > 1 else "")
        )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _psnr(a: np.ndarray, b: np.ndarray, border: int) -> float:
    return min(psnr_y(a, b, border), PSNR_CAP)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def score_outputs(
    bench: Benchmark, outputs: Sequence[Sequence[np.ndarray]]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score model outputs (one list of ``(H, W, 3)`` uint8 frames per item) and bicubic.

    Returns:
        ``(metrics, per_source)``: the ``bench_*`` means over sources (no throughput) and one row
        per source.
    """
    s = bench.scale
    rows = []
    for item, srs in zip(bench.items, outputs, strict=True):
        if len(srs) != item.frames:
            raise ValueError(f"{item.name}: {len(srs)} outputs for {item.frames} frames")
        bics = [upscale_bicubic(lr, s) for lr in item.lr]
        row: dict[str, Any] = {
            "name": item.name,
            "kind": item.kind,
            "frames": item.frames,
            "psnr": _mean([_psnr(sr, hr, s) for sr, hr in zip(srs, item.hr, strict=True)]),
            "psnr_bicubic": _mean([_psnr(b, hr, s) for b, hr in zip(bics, item.hr, strict=True)]),
            "ssim": _mean([ssim_y(sr, hr, s) for sr, hr in zip(srs, item.hr, strict=True)]),
            "ssim_bicubic": _mean([ssim_y(b, hr, s) for b, hr in zip(bics, item.hr, strict=True)]),
        }
        # Flicker within each run of consecutive frames, weighted by its frame-to-frame steps.
        runs = [r for r in item.run_slices() if r.stop - r.start >= 2]
        if item.kind == "video" and runs:
            steps = [r.stop - r.start - 1 for r in runs]
            for key, outs in (("flicker", list(srs)), ("flicker_bicubic", bics)):
                values = [flicker(outs[r], list(item.hr[r]), s) for r in runs]
                row[key] = float(np.average(values, weights=steps))
        rows.append(row)
    metrics = {
        "bench_psnr": _mean([r["psnr"] for r in rows]),
        "bench_ssim": _mean([r["ssim"] for r in rows]),
        "bench_psnr_bicubic": _mean([r["psnr_bicubic"] for r in rows]),
        "bench_ssim_bicubic": _mean([r["ssim_bicubic"] for r in rows]),
    }
    metrics["bench_psnr_gain"] = metrics["bench_psnr"] - metrics["bench_psnr_bicubic"]
    videos = [r for r in rows if "flicker" in r]
    if videos:
        metrics["bench_flicker"] = _mean([r["flicker"] for r in videos])
        metrics["bench_flicker_bicubic"] = _mean([r["flicker_bicubic"] for r in videos])
    return {k: metrics[k] for k in METRIC_KEYS if k in metrics}, rows
