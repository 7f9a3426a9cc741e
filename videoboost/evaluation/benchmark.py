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
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videoboost import state
from videoboost.config import BenchmarkConfig, DegradeConfig, EngineConfig, parse_track
from videoboost.data.align import align_stack
from videoboost.data.degrade import (
    degrade,
    h264_roundtrip,
    jpeg_roundtrip,
    mod_crop,
    upscale_bicubic,
)
from videoboost.data.frames import (
    is_image,
    iter_video_frames,
    list_images,
    read_image,
    read_video_info,
)
from videoboost.data.sources import DEFAULT_SOURCES, source_hash
from videoboost.errors import SourceError
from videoboost.evaluation.compare import detail_corners, side_by_side
from videoboost.evaluation.metrics import flicker, psnr_y, ssim_y
from videoboost.inference.engine import Predict, Upscaler

FORMAT_VERSION = 4  # 3: coded tracks; 4: the video track
PSNR_CAP = 100.0
OUTPUT_720P = (720, 1280)  # (height, width) of the throughput measurement's output

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
CLEAN = "clean"
VIDEO = "video"  # the video sources as clips (see the module doc); outside the mean over tracks
# Per-track keys: the clean track's are METRIC_KEYS' first seven, a coded track's add its name.
_TRACK_BASES = METRIC_KEYS[:7]
TRACK_CODINGS = {"count": 0}  # coded tracks built in this process (the cache test reads it)


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


# --------------------------------------------------------------------------- the benchmark set


@dataclass(frozen=True)
class BenchItem:
    """One source of the benchmark: a video's consecutive frames, or one still.

    Attributes:
        name: file name, for reports.
        kind: ``"video"`` or ``"still"``.
        content_hash: sha256 of the file's bytes (as :func:`videoboost.data.sources.source_hash`).
        lr: ``(n, H/s, W/s, 3)`` uint8 RGB inputs.
        hr: ``(n, H, W, 3)`` uint8 RGB ground truth, sides multiples of the scale.
        runs: ``(first frame index in the source, length)`` of each run of consecutive
            frames, in order; the lengths add up to ``n``.
        coded: the LR frames of each coded track (same shape as ``lr``).
    """

    name: str
    kind: str
    content_hash: str
    lr: np.ndarray
    hr: np.ndarray
    runs: tuple[tuple[int, int], ...] = ((0, 1),)
    coded: dict[str, np.ndarray] = field(default_factory=dict)  # track -> (n, h, w, 3) LR

    def run_slices(self) -> list[slice]:
        """Index ranges into ``lr``/``hr`` of each run of consecutive frames."""
        out, at = [], 0
        for _, length in self.runs:
            out.append(slice(at, at + length))
            at += length
        return out

    @property
    def frames(self) -> int:
        return int(self.hr.shape[0])


@dataclass(frozen=True)
class Benchmark:
    """A built benchmark: its version, scale, items and where it is cached."""

    version: str
    scale: int
    items: tuple[BenchItem, ...]
    path: Path
    config: dict[str, Any]
    cached: bool = False
    folder_hashes: tuple[str, ...] = ()  # hashes of folders the stills came from (leak checks)
    tracks: tuple[str, ...] = (CLEAN,)

    @property
    def frames(self) -> int:
        return sum(item.frames for item in self.items)

    def track(self, name: str) -> Benchmark:
        """This benchmark with each item's input replaced by its ``name`` track's frames."""
        if name == CLEAN:
            return self
        if name not in self.tracks:
            raise ValueError(f"benchmark {self.version} has no track {name!r} ({self.tracks})")
        items = tuple(
            BenchItem(i.name, i.kind, i.content_hash, i.coded[name], i.hr, i.runs)
            for i in self.items
            if name in i.coded  # the video track holds the video sources only
        )
        return dataclasses.replace(self, items=items)

    @property
    def source_hashes(self) -> set[str]:
        """Content hashes a training dataset must not contain (files and still folders)."""
        return {item.content_hash for item in self.items} | set(self.folder_hashes)

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "scale": self.scale,
            "frames": self.frames,
            "sources": [
                {
                    "name": i.name,
                    "kind": i.kind,
                    "frames": i.frames,
                    "hash": i.content_hash,
                    "runs": [list(r) for r in i.runs],
                }
                for i in self.items
            ],
            "tracks": list(self.tracks),
            **self.config,
        }


def _file_hash(path: Path) -> str:
    return source_hash(path)  # the datasets' hash, so leaked footage is recognised


def _expand(sources: Sequence[str | Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """Sources -> ``[(file, kind)]`` in the given order (folders: their stills, name order)."""
    files: list[tuple[Path, str]] = []
    folder_hashes: list[str] = []
    for src in sources:
        path = Path(src)
        if not path.exists():
            raise SourceError(f"{path}: no such benchmark source; check the path")
        if path.is_dir():
            images = list_images(path)
            if not images:
                raise SourceError(f"{path}: the folder holds no image for the benchmark")
            files += [(p, "still") for p in images]
            folder_hashes.append(_file_hash(path))
        elif is_image(path):
            files.append((path, "still"))
        else:
            files.append((path, "video"))
    if not files:
        raise SourceError("the benchmark needs at least one video or still")
    return files, folder_hashes


def benchmark_version(
    hashed: Sequence[tuple[str, str]], degrade_cfg: DegradeConfig, cfg: BenchmarkConfig
) -> str:
    """Hash of (format, ``[(kind, content hash)]`` in order, degradation, frame selection)."""
    payload = json.dumps(
        {
            "format": FORMAT_VERSION,
            "sources": [list(x) for x in hashed],
            "degrade": degrade_cfg.model_dump(),
            "selection": {"frames": cfg.frames, "segments": cfg.segments},
            "tracks": list(cfg.tracks),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def plan_runs(total: int, frames: int, segments: int) -> list[tuple[int, int]]:
    """``(start, length)`` runs of consecutive frames: ``frames`` in all, spread over ``total``.

    A video no longer than ``frames`` is taken whole, as one run. Otherwise the frames are split
    into ``segments`` runs (fewer if a run would get under 2 frames), the first at the start,
    the last at the end, the others evenly between.
    """
    if total <= frames:
        return [(0, total)] if total > 0 else []
    k = max(1, min(segments, frames // 2))
    lengths = [frames // k + (1 if i < frames % k else 0) for i in range(k)]
    if k == 1:
        return [(0, lengths[0])]
    starts = [round(i * (total - lengths[i]) / (k - 1)) for i in range(k)]
    return list(zip(starts, lengths, strict=True))


def _frame_total(path: Path) -> int:
    claimed = read_video_info(path).frame_count
    return claimed if claimed > 0 else sum(1 for _ in iter_video_frames(path))


def _read_frames(
    path: Path, kind: str, cfg: BenchmarkConfig
) -> tuple[list[np.ndarray], tuple[tuple[int, int], ...]]:
    """The selected frames of a source and their runs (see :func:`plan_runs`)."""
    if kind == "still":
        return [read_image(path)], ((0, 1),)
    wanted = plan_runs(_frame_total(path), cfg.frames, cfg.segments)
    keep = {start + j for start, length in wanted for j in range(length)}
    last = max(keep, default=-1)
    got: dict[int, np.ndarray] = {}
    for frame in iter_video_frames(path):
        if frame.index in keep:
            got[frame.index] = frame.rgb
        if frame.index >= last:
            break
    # The container's frame count can overstate: keep the part of each run that decoded.
    runs, frames = [], []
    for start, length in wanted:
        run = [got[i] for i in range(start, start + length) if i in got]
        if run:
            runs.append((start, len(run)))
            frames += run
    if not frames:
        raise SourceError(f"{path}: no frame could be decoded for the benchmark")
    return frames, tuple(runs)


def build_benchmark(
    scale: int,
    sources: Sequence[str | Path] | None = None,
    cfg: BenchmarkConfig = BenchmarkConfig(),
    *,
    cache_dir: str | Path | None = None,
) -> Benchmark:
    """Build (or load from the cache) the benchmark at ``scale``.

    Args:
        scale: the model's integer factor; the LR frames are made at this factor.
        sources: videos, stills or folders of stills; None = :data:`DEFAULT_SOURCES`.
        cfg: frame selection (``frames``, ``segments``).
        cache_dir: where built benchmarks live; None = ``<state>/benchmarks``.

    Returns:
        The benchmark; ``cached`` tells whether it came from the cache.

    Raises:
        SourceError: a missing or unreadable source, or a video with no frame to take.
    """
    degrade_cfg = DegradeConfig(scale=scale)
    files, folder_hashes = _expand(sources or DEFAULT_SOURCES)
    hashed = [(kind, _file_hash(path)) for path, kind in files]
    version = benchmark_version(hashed, degrade_cfg, cfg)
    root = Path(cache_dir) if cache_dir else state.home() / "benchmarks"
    folder = root / version
    config = {
        "degrade": degrade_cfg.model_dump(),
        "selection": {"frames": cfg.frames, "segments": cfg.segments},
    }
    cached = _load_cached(folder, version, scale, config, tuple(folder_hashes), cfg.tracks)
    if cached is not None:
        return cached

    items = []
    for (path, kind), (_, digest) in zip(files, hashed, strict=True):
        frames, runs = _read_frames(path, kind, cfg)
        hr = [mod_crop(f, scale) for f in frames]
        if min(hr[0].shape[:2]) < scale * 4:
            raise SourceError(f"{path}: frames of {hr[0].shape[1]}x{hr[0].shape[0]} are too small")
        lr = [degrade(f, degrade_cfg) for f in hr]
        item = BenchItem(path.name, kind, digest, np.stack(lr), np.stack(hr), runs)
        coded = {
            t: code_track(item, t)
            for t in cfg.tracks
            if t != CLEAN and (t != VIDEO or kind == "video")
        }
        items.append(dataclasses.replace(item, coded=coded))
    bench = Benchmark(
        version, scale, tuple(items), folder, config, False, tuple(folder_hashes), cfg.tracks
    )
    _save(bench)
    return bench


def code_track(item: BenchItem, track: str) -> np.ndarray:
    """The clean LR frames of ``item`` as ``track`` codes them (see the module doc).

    A video's runs of consecutive frames are coded as one clip each (an I-frame, then P/B
    frames, x264's ``medium`` preset), as a real file would be; a still as one frame.
    """
    kind, level = parse_track(track)
    TRACK_CODINGS["count"] += 1
    if kind == "jpeg":
        return np.stack([jpeg_roundtrip(f, level) for f in item.lr])
    if kind in ("h264", "video"):
        parts = [h264_roundtrip(item.lr[r], level) for r in item.run_slices()]
        return np.concatenate(parts)
    raise ValueError(f"{track}: the clean track is not coded")


def _save(bench: Benchmark) -> None:
    """Write the benchmark atomically: a temp folder renamed into place (first writer wins)."""
    tmp = bench.path.with_name(f".{bench.version}.tmp-{time.monotonic_ns()}")
    tmp.mkdir(parents=True)
    try:
        for i, item in enumerate(bench.items):
            coded = {f"lr_{t}": a for t, a in item.coded.items()}
            np.savez(tmp / f"{i:03d}.npz", lr=item.lr, hr=item.hr, **coded)
        (tmp / "benchmark.json").write_text(json.dumps(bench.describe(), indent=2))
        # Another process may have published the same version first: identical content.
        with contextlib.suppress(OSError):
            tmp.rename(bench.path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_cached(
    folder: Path,
    version: str,
    scale: int,
    config: dict,
    folder_hashes: tuple[str, ...],
    tracks: tuple[str, ...] = (CLEAN,),
) -> Benchmark | None:
    meta_file = folder / "benchmark.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        items = []
        for i, src in enumerate(meta["sources"]):
            with np.load(folder / f"{i:03d}.npz") as z:
                runs = tuple(tuple(r) for r in src["runs"])
                coded = {t: z[f"lr_{t}"] for t in tracks if t != CLEAN}
                items.append(
                    BenchItem(src["name"], src["kind"], src["hash"], z["lr"], z["hr"], runs, coded)
                )
    except (OSError, KeyError, ValueError):
        return None  # a damaged cache is rebuilt, not trusted
    if meta.get("version") != version or meta.get("scale") != scale:
        return None
    return Benchmark(version, scale, tuple(items), folder, config, True, folder_hashes, tracks)


# --------------------------------------------------------------------------- the report


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


# --------------------------------------------------------------------------- scoring


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
