"""Versioned datasets of whole frames: sources -> aligned LR/HR frames in npz shards + a manifest.

The layout is :mod:`videoboost.data.shards`'. Each kept frame is mod-cropped to the scale (aspect kept)
and degraded into its LR twin; training later draws fresh random crops from these frames every
step (:mod:`videoboost.training.crops`), so nothing here fixes which patches a model sees.

The version is a content hash of the sources and the build config, so the same inputs always
give the same version, and a build whose version already exists at ``out`` is not redone.
Splits never share a frame: a video's last ``val_fraction`` (in time, with a gap, as
neighbouring frames are near-identical) and that share of a folder's stills (by content hash)
are validation. Memory stays constant in the number of sources: frames stream from the source
into a shard writer that holds at most one shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from videoboost.config import DatasetConfig
from videoboost.data.checks import ValidationResult
from videoboost.data.degrade import degrade, mod_crop, real_variants
from videoboost.data.frames import (
    Frame,
    is_image,
    is_video,
    iter_source,
    list_images,
    read_image,
    read_video_info,
)
from videoboost.data.shards import (
    DOCS,
    FORMAT_VERSION,
    INFO,
    MANIFEST,
    MANIFEST_COLUMNS,
    DatasetInfo,
    SourceReport,
    frame_key,
    load_config,
    load_frames,
    load_info,
    load_manifest,
    variant_key,
    window_key,
)
from videoboost.data.sources import RESERVED_MEDIA, held_out_hashes, source_hash
from videoboost.data.windows import (
    degrade_window,
    real_window_variants,
    synthetic_motion,
    video_windows,
)
from videoboost.errors import SourceError
from videoboost.progress import is_terminal, progress_bar

__all__ = [
    "DatasetInfo",
    "SourceReport",
    "build_dataset",
    "dataset_version",
    "expand_sources",
    "load_config",
    "load_frames",
    "load_info",
    "load_manifest",
    "source_hash",
]


def dataset_version(source_hashes: Sequence[str], cfg: DatasetConfig) -> str:
    """Version = hash of (format, sorted source hashes, config). Paths do not matter, content does."""
    config = cfg.model_dump()
    # Fields added later are left out at their defaults, so that published datasets (and the
    # model cards naming them) keep their versions.
    if config["sampling"]["max_frames_per_clip"] is None:
        del config["sampling"]["max_frames_per_clip"]
    if not config["prescale"]:
        del config["prescale"]
    payload = json.dumps(
        {"format": FORMAT_VERSION, "sources": sorted(source_hashes), "config": config},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def expand_sources(sources: Sequence[str | Path]) -> list[Path]:
    """Folders of videos become their videos (sorted); a folder of stills stays one source.

    A scheduled retrain points at a drop folder of footage; each clip is its own source so the
    split by source keeps whole clips out of training.
    """
    out: list[Path] = []
    for src in sources:
        path = Path(src)
        if path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.is_file() and is_video(p))
            out.extend(videos)
            if list_images(path) or not videos:
                out.append(path)  # its stills (or an empty folder, reported as skipped)
        else:
            out.append(path)
    return out


def _held_out_reason(path: Path, held_out: dict[str, str]) -> str:
    files = list_images(path) if path.is_dir() else [path]
    for f in files:
        digest = source_hash(f)
        name = held_out.get(digest)
        if name is not None:
            return (
                f"{f}: is {name} of the held-out benchmark; training on it would make the "
                "promotion gate meaningless"
            )
        if digest in RESERVED_MEDIA:
            return (
                f"{f}: is {RESERVED_MEDIA[digest]}, sample media reserved for independent "
                "evaluation; leave it out of the training sources"
            )
    return ""


def prescale(rgb: np.ndarray, factor: float) -> np.ndarray:
    """A frame area-downscaled by ``factor`` (<= 1; 1 returns it as it is). Averaging blocks
    of pixels evens out a heavy codec's blocking and ringing, so what is left is a fair HR
    target (DatasetConfig.prescale)."""
    if factor >= 1:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _kind(path: Path) -> str:
    if path.is_dir():
        return "images"
    return "image" if is_image(path) else "video"


def _frame_size(path: Path) -> tuple[int, int]:
    """(height, width) of a source's frames, read without decoding the whole source."""
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise SourceError(f"{path}: the folder holds no image")
        return read_image(images[0]).shape[:2]
    if is_image(path):
        return read_image(path).shape[:2]
    info = read_video_info(path)
    return info.height, info.width


def _frame_total(path: Path) -> int:
    if path.is_dir():
        return len(list_images(path))
    if is_image(path):
        return 1
    return read_video_info(path).frame_count


class _ShardWriter:
    """Buffers the frames of one split and writes an npz shard every ``size`` frames."""

    def __init__(self, root: Path, split: str, size: int):
        self.root, self.split, self.size = root, split, size
        self.arrays: dict[str, np.ndarray] = {}
        self.count = 0

    def add(
        self,
        lr: np.ndarray,
        hr: np.ndarray,
        variants: np.ndarray | None = None,
        window: np.ndarray | None = None,
    ) -> tuple[str, int]:
        name = f"{self.split}-{self.count // self.size:05d}.npz"
        index = self.count % self.size
        self.arrays[frame_key("lr", index)] = lr
        self.arrays[frame_key("hr", index)] = hr
        if variants is not None:
            self.arrays[variant_key(index)] = variants
        if window is not None:
            self.arrays[window_key(index)] = window
        self.count += 1
        if index == self.size - 1:
            self.flush()
        return name, index

    def flush(self) -> None:
        if not self.arrays:
            return
        name = f"{self.split}-{(self.count - 1) // self.size:05d}.npz"
        # Uncompressed: frames are decoded pixels that zlib barely shrinks, and saving and
        # loading stay at disk speed (a compressed build took several times longer).
        np.savez(self.root / name, **self.arrays)
        self.arrays = {}


def _assign_splits(reports: list[SourceReport]) -> None:
    """Videos split by time, folders of stills by image; a lone image trains only."""
    for r in reports:
        if not r.skipped:
            r.split = {"video": "time", "images": "stills"}.get(r.kind, "train")


def _val_stills(path: Path, val_fraction: float) -> set[int]:
    """Indices (name order) of the stills of a folder that go to validation: the share
    ``val_fraction`` (at least one when the folder has two or more), chosen by content hash."""
    images = list_images(path)
    if len(images) < 2:
        return set()
    n_val = min(max(1, round(len(images) * val_fraction)), len(images) - 1)
    ranked = sorted(range(len(images)), key=lambda i: source_hash(images[i]))
    return set(ranked[:n_val])


def build_dataset(
    sources: Sequence[str | Path],
    out: str | Path,
    cfg: DatasetConfig | None = None,
    *,
    validator: Callable[[Path, DatasetConfig], ValidationResult] | None = None,
    progress: bool = True,
) -> DatasetInfo:
    """Build (or reuse) the dataset of ``sources`` at ``out``.

    Args:
        sources: video files, image files or folders of stills.
        out: dataset folder; written atomically (built in a temp folder, renamed into place).
        cfg: build settings.
        validator: checks the built dataset before it is published and refuses a failing one
            (:func:`videoboost.mlops.validation.validate_dataset`, the Great Expectations
            suite; :func:`~videoboost.mlops.validation.build_validated_dataset` passes it).
            None publishes unchecked.
        progress: show a progress bar per source.

    Raises:
        SourceError: no source could be used (each reason is in the message).
        ValidationFailed: the built dataset failed validation; nothing is published.
    """
    cfg = cfg or DatasetConfig()
    out = Path(out).resolve()
    reports: list[SourceReport] = []
    held_out = held_out_hashes()
    for src in expand_sources(sources):
        path = Path(src)
        report = SourceReport(path=str(path), kind="?")
        try:
            if not path.exists():
                raise SourceError(f"{path}: no such file or folder")
            report.kind = _kind(path)
            reason = _held_out_reason(path, held_out)
            if reason:
                raise SourceError(reason)
            report.content_hash = source_hash(path)
            h, w = _frame_size(path)  # fails fast on corrupt/non-video files
            factor = cfg.prescale.get(report.content_hash, 1.0)
            h, w = round(h * factor), round(w * factor)
            need = cfg.min_lr_side * cfg.scale
            if min(h, w) < need and report.kind != "images":
                raise SourceError(
                    f"{path}: frames of {w}x{h} are smaller than {need}x{need} (LR side "
                    f"{cfg.min_lr_side} x scale {cfg.scale}); no room for training crops"
                )
        except SourceError as exc:
            report.skipped = str(exc)
        reports.append(report)
    used = [r for r in reports if not r.skipped]
    if not used:
        reasons = "; ".join(r.skipped for r in reports) or "no sources given"
        raise SourceError(f"no usable source: {reasons}")
    version = dataset_version([r.content_hash for r in used], cfg)

    existing = None
    if (out / INFO).is_file():
        try:
            existing = load_info(out)
        except SourceError:  # an older format: rebuilt below
            existing = None
    if existing is not None and existing.version == version:
        existing.cached = True
        existing.sources = reports  # report this call's skips too
        return existing

    _assign_splits(reports)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        info = _write(tmp, reports, cfg, version, progress)
        if info.counts["train"] + info.counts["val"] == 0:
            reasons = "; ".join(f"{r.path}: {r.skipped}" for r in info.skipped)
            raise SourceError(f"no usable frame in any source ({reasons})")
        if validator is not None:
            result = validator(tmp, cfg)
            info.validation = result.summary()
            _write_info(tmp, info, cfg)
            if not result.success:
                report = _keep_rejected_report(tmp, out, version)
                result.docs = report / DOCS
            result.raise_for_failure()
        _publish(tmp, out)
        info.path = out
        return info
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _keep_rejected_report(tmp: Path, out: Path, version: str) -> Path:
    """Keep the failing build's GX report (not its data) beside ``out``, for people to read."""
    report = out.with_name(f"{out.name}.rejected-{version}")
    shutil.rmtree(report, ignore_errors=True)
    report.mkdir(parents=True)
    for name in ("gx", "validation.json", INFO, MANIFEST):
        if (tmp / name).exists():
            shutil.move(str(tmp / name), str(report / name))
    return report


def _publish(tmp: Path, out: Path) -> None:
    """Swap the finished build into place; the old dataset is removed only after the rename."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.time_ns()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(
    root: Path, reports: list[SourceReport], cfg: DatasetConfig, version: str, progress: bool
) -> DatasetInfo:
    (root / "shards").mkdir()
    writers = {s: _ShardWriter(root / "shards", s, cfg.shard_frames) for s in ("train", "val")}
    rows: list[dict] = []
    for src_idx, report in enumerate(reports):
        if report.skipped:
            continue
        path = Path(report.path)
        boundary = gap = 0
        val_stills: set[int] = set()
        if report.split == "time":
            total = max(_frame_total(path), 1)
            boundary = int(total * (1 - cfg.val_fraction))
            gap = max(1, total // 50)  # frames on each side of the cut are near-identical
        elif report.split == "stills":
            val_stills = _val_stills(path, cfg.val_fraction)
        # A bar in a terminal; in a log one line per source (not carriage-return frames).
        bar = progress_bar(desc=path.name, unit="frame", enabled=progress, leave=not is_terminal())

        def zone(
            index: int, boundary=boundary, gap=gap, timed=report.split == "time"
        ) -> str | None:
            if not timed:
                return "train"
            if boundary - gap <= index < boundary:
                return None  # the gap: no window reaches across the split
            return "val" if index >= boundary else "train"

        try:
            if cfg.window and report.kind == "video":
                stream = video_windows(path, cfg.sampling, cfg.window, zone)
            else:
                stream = ((f, None, None) for f in iter_source(path, cfg.sampling))
            factor = cfg.prescale.get(report.content_hash, 1.0)
            for frame, neighbours, used in stream:
                bar.update(1)
                if factor < 1:
                    frame = Frame(frame.index, prescale(frame.rgb, factor))
                    if neighbours is not None:
                        neighbours = {d: prescale(n, factor) for d, n in neighbours.items()}
                if report.split == "time":
                    if boundary - gap <= frame.index < boundary:
                        continue
                    split = "val" if frame.index >= boundary else "train"
                elif report.split == "stills":
                    split = "val" if frame.index in val_stills else "train"
                else:
                    split = "train"
                row = _add_frame(
                    frame, report, split, src_idx, cfg, writers[split], neighbours, used
                )
                if row is not None:
                    rows.append(row)
                    report.frames_used += 1
        except SourceError as exc:
            report.skipped = str(exc)
        finally:
            bar.close()
        if not report.skipped and report.frames_used == 0:
            report.skipped = (
                f"{path}: no usable frame (LR side under {cfg.min_lr_side} px at scale "
                f"{cfg.scale}, or near-constant)"
            )
    for w in writers.values():
        w.flush()
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest.to_csv(root / MANIFEST, index=False)
    counts = {s: int((manifest["split"] == s).sum()) for s in ("train", "val")}
    info = DatasetInfo(root, version, cfg.scale, counts, reports)
    _write_info(root, info, cfg)
    return info


def _add_frame(
    frame: Frame,
    report: SourceReport,
    split: str,
    src_idx: int,
    cfg: DatasetConfig,
    writer,
    neighbours: dict[int, np.ndarray] | None = None,
    used: dict[int, int] | None = None,
) -> dict | None:
    """Mod-crop, degrade and store one frame; its manifest row, or None when it is unusable.

    Near-constant frames (black, fades, letterbox-only) teach the model nothing and would be
    refused by validation, so they are dropped here. With ``cfg.window``, the frame's
    neighbours in time (``neighbours``, a video's; None for a still, which gets synthetic
    motion) are degraded like it and stored beside it (:mod:`videoboost.data.windows`).
    """
    hr = mod_crop(frame.rgb, cfg.scale)
    if min(hr.shape[:2]) // cfg.scale < cfg.min_lr_side or float(hr.std()) < cfg.min_frame_std:
        return None
    rng = np.random.default_rng([cfg.seed, src_idx, frame.index])
    lr = degrade(hr, cfg.degrade, rng)
    window = None
    if cfg.window:
        if neighbours is None:  # a still: a camera moving over it
            motion_rng = np.random.default_rng([cfg.seed, src_idx, frame.index, 2])
            neighbours = synthetic_motion(hr, cfg.window, cfg.scale, motion_rng)
            used = {}
        else:
            neighbours = {d: mod_crop(n, cfg.scale) for d, n in neighbours.items()}
        window = degrade_window(hr, neighbours, cfg.degrade, [cfg.seed, src_idx, frame.index])[None]
    variants, recipes = None, []
    if cfg.degrade.profile == "real":
        # A stream of its own per frame: the variants do not depend on the clean LR's draws.
        vrng = np.random.default_rng([cfg.seed, src_idx, frame.index, 1])
        if window is not None:
            variants, nbrs, recipes = real_window_variants(hr, neighbours, cfg.degrade, vrng)
            window = np.concatenate([window, nbrs])
        else:
            variants, recipes = real_variants(hr, cfg.degrade, vrng)
    digest = hashlib.sha1(hr.tobytes()).hexdigest()
    shard, idx = writer.add(lr, hr, variants, window)
    return {
        "frame_id": digest[:16],
        "source": Path(report.path).name,
        "source_kind": "video" if report.kind == "video" else "still",
        "frame_index": frame.index,
        "split": split,
        "lr_h": lr.shape[0],
        "lr_w": lr.shape[1],
        "hr_h": hr.shape[0],
        "hr_w": hr.shape[1],
        "channels": hr.shape[2],
        "dtype": str(hr.dtype),
        "scale": cfg.scale,
        "lr_mean": round(float(lr.mean()), 3),
        "lr_std": round(float(lr.std()), 3),
        "hr_mean": round(float(hr.mean()), 3),
        "hr_std": round(float(hr.std()), 3),
        "content_hash": digest,
        "shard": shard,
        "shard_index": idx,
        "variants": 0 if variants is None else len(variants),
        "recipes": "; ".join(recipes),
        # Which frames the window holds: "-1:11 +1:13" (replicated ones repeat an index),
        # "synthetic" for a still's camera motion, empty without windows.
        "window": (
            ""
            if window is None
            else " ".join(f"{d:+d}:{j}" for d, j in used.items())
            if used
            else "synthetic"
        ),
    }


def _write_info(root: Path, info: DatasetInfo, cfg: DatasetConfig) -> None:
    payload = {
        "format": FORMAT_VERSION,
        "version": info.version,
        "scale": info.scale,
        "counts": info.counts,
        "config": cfg.model_dump(),
        "sources": [asdict(s) for s in info.sources],
        "validation": info.validation,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = root / f".{INFO}.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(root / INFO)
