"""The benchmark set: held-out frames, their LR inputs and coded tracks, versioned and cached.

Which frames, how they are degraded and coded, the version hash and the cache are described in
:mod:`videoboost.evaluation.benchmark`, the public face of this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videoboost import state
from videoboost.config import BenchmarkConfig, DegradeConfig, parse_track
from videoboost.data.degrade import degrade, h264_roundtrip, jpeg_roundtrip, mod_crop
from videoboost.data.frames import (
    is_image,
    iter_video_frames,
    list_images,
    read_image,
    read_video_info,
)
from videoboost.data.sources import DEFAULT_SOURCES, source_hash
from videoboost.errors import SourceError

FORMAT_VERSION = 5  # 3: coded tracks; 4: the video track; 5: repeatable H.264 coding
CLEAN = "clean"
VIDEO = "video"  # the video sources as clips (see the module doc); outside the mean over tracks
TRACK_CODINGS = {"count": 0}  # coded tracks built in this process (the cache test reads it)


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
        coded = {t: code_track(item, t) for t in _coded_tracks(cfg.tracks, kind)}
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


def _coded_tracks(tracks: Sequence[str], kind: str) -> list[str]:
    """The tracks stored as coded LR for a source of ``kind``: all but the clean one, and the
    video track for videos only (a still has no clip to code)."""
    return [t for t in tracks if t != CLEAN and (t != VIDEO or kind == "video")]


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
                coded = {t: z[f"lr_{t}"] for t in _coded_tracks(tracks, src["kind"])}
                items.append(
                    BenchItem(src["name"], src["kind"], src["hash"], z["lr"], z["hr"], runs, coded)
                )
    except (OSError, KeyError, ValueError):
        return None  # a damaged cache is rebuilt, not trusted
    if meta.get("version") != version or meta.get("scale") != scale:
        return None
    return Benchmark(version, scale, tuple(items), folder, config, True, folder_hashes, tracks)
