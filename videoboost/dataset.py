"""Versioned patch-pair datasets: sources -> aligned LR/HR patches in npz shards + a manifest.

Layout of a dataset folder::

    dataset.json           version, config, sources (used and skipped), counts
    manifest.csv           one row per pair (source, frame, position, split, shapes, stats, hash)
    shards/train-00000.npz lr (N, p, p, 3) uint8, hr (N, sp, sp, 3) uint8
    shards/val-00000.npz
    frames/val/NNNN_{lr,hr}.png   whole validation frames, for whole-frame PSNR/SSIM
    validation.json, gx/   the Great Expectations result and its Data Docs

The version is a content hash of the sources and the build config, so the same inputs always
give the same version, and a build whose version already exists at ``out`` is not redone.
Splits are by source (or by contiguous time segment with one source): no validation frame
leaks into training.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from videoboost.config import DatasetConfig
from videoboost.degrade import degrade, mod_crop
from videoboost.errors import SourceError
from videoboost.frames import (
    Frame,
    is_image,
    is_video,
    iter_source,
    list_images,
    read_image,
    read_video_info,
)

FORMAT_VERSION = 1
MANIFEST = "manifest.csv"
INFO = "dataset.json"
VAL_FRAMES = 8  # whole validation frames kept for whole-frame metrics


@dataclass
class SourceReport:
    path: str
    kind: str  # "video" | "images" | "image"
    content_hash: str = ""
    frames_used: int = 0
    pairs: int = 0
    split: str = ""  # "train", "val" or "time" (one source split by time)
    skipped: str = ""  # reason, empty when used


@dataclass
class DatasetInfo:
    path: Path
    version: str
    scale: int
    patch: int
    counts: dict[str, int]
    sources: list[SourceReport] = field(default_factory=list)
    cached: bool = False
    validation: dict | None = None

    @property
    def docs(self) -> Path:
        """The Great Expectations Data Docs page of this dataset."""
        return self.path / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"

    @property
    def skipped(self) -> list[SourceReport]:
        return [s for s in self.sources if s.skipped]


def _hash_file(path: Path, h: hashlib._Hash) -> None:
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def source_hash(path: Path) -> str:
    """Content hash of a video/image file or of every image of a folder (names + bytes)."""
    h = hashlib.sha256()
    if path.is_dir():
        for img in list_images(path):
            h.update(img.name.encode())
            _hash_file(img, h)
    else:
        _hash_file(path, h)
    return h.hexdigest()


def dataset_version(source_hashes: Sequence[str], cfg: DatasetConfig) -> str:
    """Version = hash of (format, sorted source hashes, config). Paths do not matter, content does."""
    payload = json.dumps(
        {"format": FORMAT_VERSION, "sources": sorted(source_hashes), "config": cfg.model_dump()},
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


def held_out_hashes() -> dict[str, str]:
    """Content hash -> name of every file of the held-out benchmark (never trained on)."""
    from videoboost.evaluate import DEFAULT_SOURCES

    out: dict[str, str] = {}
    for src in DEFAULT_SOURCES:
        files = list_images(src) if src.is_dir() else [src] if src.is_file() else []
        out.update({source_hash(f): f.name for f in files})
    return out


def _held_out_reason(path: Path, held_out: dict[str, str]) -> str:
    files = list_images(path) if path.is_dir() else [path]
    for f in files:
        name = held_out.get(source_hash(f))
        if name is not None:
            return (
                f"{f}: is {name} of the held-out benchmark; training on it would make the "
                "promotion gate meaningless"
            )
    return ""


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


def _random_patches(
    hr: np.ndarray, lr: np.ndarray, cfg: DatasetConfig, rng: np.random.Generator
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Aligned random crops: LR ``p x p`` at (y, x), HR ``sp x sp`` at (s*y, s*x).

    Near-constant HR patches (std below the floor) are redrawn a few times, then dropped:
    sky and letterbox bars teach the model nothing and skew the loss.
    """
    s, p = cfg.scale, cfg.patch
    h, w = lr.shape[:2]
    if h < p or w < p:
        return
    for _ in range(cfg.patches_per_frame):
        for _attempt in range(4):
            y = int(rng.integers(0, h - p + 1))
            x = int(rng.integers(0, w - p + 1))
            hr_patch = hr[s * y : s * (y + p), s * x : s * (x + p)]
            if float(hr_patch.std()) >= cfg.min_patch_std:
                yield y, x, lr[y : y + p, x : x + p], hr_patch
                break


class _ShardWriter:
    """Buffers pairs of one split and writes compressed npz shards of ``shard_size``."""

    def __init__(self, root: Path, split: str, size: int):
        self.root, self.split, self.size = root, split, size
        self.lr: list[np.ndarray] = []
        self.hr: list[np.ndarray] = []
        self.count = 0

    def add(self, lr: np.ndarray, hr: np.ndarray) -> tuple[str, int]:
        name = f"{self.split}-{self.count // self.size:05d}.npz"
        self.lr.append(lr)
        self.hr.append(hr)
        index = len(self.lr) - 1
        self.count += 1
        if len(self.lr) == self.size:
            self.flush()
        return name, index

    def flush(self) -> None:
        if not self.lr:
            return
        name = f"{self.split}-{(self.count - 1) // self.size:05d}.npz"
        np.savez_compressed(self.root / name, lr=np.stack(self.lr), hr=np.stack(self.hr))
        self.lr, self.hr = [], []


def _assign_splits(reports: list[SourceReport], val_fraction: float) -> None:
    """With several sources, whole sources go to validation (chosen by hash, so stable)."""
    used = [r for r in reports if not r.skipped]
    if len(used) == 1:
        used[0].split = "time"
        return
    ranked = sorted(used, key=lambda r: r.content_hash)
    n_val = min(max(1, round(len(used) * val_fraction)), len(used) - 1)
    for i, r in enumerate(ranked):
        r.split = "val" if i < n_val else "train"


def build_dataset(
    sources: Sequence[str | Path],
    out: str | Path,
    cfg: DatasetConfig | None = None,
    *,
    validate: bool = True,
    progress: bool = True,
) -> DatasetInfo:
    """Build (or reuse) the dataset of ``sources`` at ``out``.

    Args:
        sources: video files, image files or folders of stills.
        out: dataset folder; written atomically (built in a temp folder, renamed into place).
        cfg: build settings.
        validate: run the Great Expectations suite and refuse to publish a failing dataset.
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
            need = cfg.patch * cfg.scale
            if min(h, w) < need:
                raise SourceError(
                    f"{path}: frames of {w}x{h} are smaller than one {need}x{need} HR patch "
                    f"(patch {cfg.patch} x scale {cfg.scale}); no usable pair"
                )
        except SourceError as exc:
            report.skipped = str(exc)
        reports.append(report)
    used = [r for r in reports if not r.skipped]
    if not used:
        reasons = "; ".join(r.skipped for r in reports) or "no sources given"
        raise SourceError(f"no usable source: {reasons}")
    version = dataset_version([r.content_hash for r in used], cfg)

    existing = load_info(out) if (out / INFO).is_file() else None
    if existing is not None and existing.version == version:
        existing.cached = True
        existing.sources = reports  # report this call's skips too
        return existing

    _assign_splits(reports, cfg.val_fraction)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        info = _write(tmp, reports, cfg, version, progress)
        if info.counts["train"] + info.counts["val"] == 0:
            reasons = "; ".join(f"{r.path}: {r.skipped}" for r in info.skipped)
            raise SourceError(f"no patch could be cut from any source ({reasons})")
        if validate:
            from videoboost.validation import validate_dataset  # GX only when validating

            result = validate_dataset(tmp, cfg)
            info.validation = result.summary()
            _write_info(tmp, info, cfg)
            if not result.success:
                report = _keep_rejected_report(tmp, out, version)
                result.docs = (
                    report / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
                )
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
    (root / "frames" / "val").mkdir(parents=True)
    writers = {s: _ShardWriter(root / "shards", s, cfg.shard_size) for s in ("train", "val")}
    rows: list[dict] = []
    seen: set[str] = set()
    val_frames_kept = 0
    for src_idx, report in enumerate(reports):
        if report.skipped:
            continue
        path = Path(report.path)
        boundary = gap = 0
        if report.split == "time":
            total = max(_frame_total(path), 1)
            boundary = int(total * (1 - cfg.val_fraction))
            gap = max(1, total // 50)  # frames on each side of the cut are near-identical
        bar = tqdm(desc=path.name, unit="frame", disable=not progress, leave=False)
        try:
            for frame in iter_source(path, cfg.sampling):
                bar.update(1)
                split = report.split
                if split == "time":
                    if boundary - gap <= frame.index < boundary:
                        continue
                    split = "val" if frame.index >= boundary else "train"
                hr = mod_crop(frame.rgb, cfg.scale)
                rng = np.random.default_rng([cfg.seed, src_idx, frame.index])
                lr = degrade(hr, cfg.degrade, rng)
                if split == "val" and val_frames_kept < VAL_FRAMES:
                    stem = root / "frames" / "val" / f"{val_frames_kept:04d}"
                    cv2.imwrite(f"{stem}_hr.png", hr[..., ::-1])
                    cv2.imwrite(f"{stem}_lr.png", lr[..., ::-1])
                    val_frames_kept += 1
                rows.extend(
                    _frame_rows(frame, report, split, lr, hr, cfg, rng, writers[split], seen)
                )
                report.frames_used += 1
        except SourceError as exc:
            report.skipped = str(exc)
        finally:
            bar.close()
        if not report.skipped and report.pairs == 0:
            report.skipped = (
                f"{path}: no usable {cfg.patch}x{cfg.patch} LR patch (frames too small for "
                f"scale {cfg.scale}, or too flat)"
            )
    for w in writers.values():
        w.flush()
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest.to_csv(root / MANIFEST, index=False)
    counts = {s: int((manifest["split"] == s).sum()) for s in ("train", "val")}
    counts["val_frames"] = val_frames_kept
    info = DatasetInfo(root, version, cfg.scale, cfg.patch, counts, reports)
    _write_info(root, info, cfg)
    return info


MANIFEST_COLUMNS = [
    "pair_id", "source", "frame_index", "split", "y", "x", "lr_h", "lr_w", "hr_h", "hr_w",
    "channels", "dtype", "scale", "lr_mean", "lr_std", "hr_mean", "hr_std", "content_hash",
    "shard", "shard_index",
]  # fmt: skip


def _frame_rows(frame: Frame, report, split, lr, hr, cfg, rng, writer, seen) -> list[dict]:
    rows = []
    for y, x, lr_p, hr_p in _random_patches(hr, lr, cfg, rng):
        digest = hashlib.sha1(hr_p.tobytes()).hexdigest()
        if digest in seen:  # identical crops (static content) would only double-count
            continue
        seen.add(digest)
        shard, idx = writer.add(lr_p, hr_p)
        report.pairs += 1
        rows.append(
            {
                "pair_id": f"{digest[:12]}",
                "source": Path(report.path).name,
                "frame_index": frame.index,
                "split": split,
                "y": y,
                "x": x,
                "lr_h": lr_p.shape[0],
                "lr_w": lr_p.shape[1],
                "hr_h": hr_p.shape[0],
                "hr_w": hr_p.shape[1],
                "channels": hr_p.shape[2],
                "dtype": str(hr_p.dtype),
                "scale": cfg.scale,
                "lr_mean": round(float(lr_p.mean()), 3),
                "lr_std": round(float(lr_p.std()), 3),
                "hr_mean": round(float(hr_p.mean()), 3),
                "hr_std": round(float(hr_p.std()), 3),
                "content_hash": digest,
                "shard": shard,
                "shard_index": idx,
            }
        )
    return rows


def _write_info(root: Path, info: DatasetInfo, cfg: DatasetConfig) -> None:
    payload = {
        "format": FORMAT_VERSION,
        "version": info.version,
        "scale": info.scale,
        "patch": info.patch,
        "counts": info.counts,
        "config": cfg.model_dump(),
        "sources": [asdict(s) for s in info.sources],
        "validation": info.validation,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = root / f".{INFO}.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(root / INFO)


def load_info(path: str | Path) -> DatasetInfo:
    """Read ``dataset.json`` of a built dataset."""
    path = Path(path)
    info_file = path / INFO
    if not info_file.is_file():
        raise SourceError(f"{path}: not a VideoBoost dataset (no {INFO}); build one first")
    data = json.loads(info_file.read_text())
    return DatasetInfo(
        path=path,
        version=data["version"],
        scale=data["scale"],
        patch=data["patch"],
        counts=data["counts"],
        sources=[SourceReport(**s) for s in data["sources"]],
        validation=data.get("validation"),
    )


def load_config(path: str | Path) -> DatasetConfig:
    return DatasetConfig.model_validate(json.loads((Path(path) / INFO).read_text())["config"])


def load_manifest(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(path) / MANIFEST)


def load_split(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of a split as ``(lr, hr)`` uint8 arrays (fine for the small datasets here)."""
    shards = sorted((Path(path) / "shards").glob(f"{split}-*.npz"))
    if not shards:
        raise SourceError(f"{path}: no {split} shards")
    lrs, hrs = [], []
    for shard in shards:
        with np.load(shard) as z:
            lrs.append(z["lr"])
            hrs.append(z["hr"])
    return np.concatenate(lrs), np.concatenate(hrs)


def load_val_frames(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole validation frames as ``[(lr, hr), ...]`` RGB uint8."""
    folder = Path(path) / "frames" / "val"
    pairs = []
    for hr_file in sorted(folder.glob("*_hr.png")):
        lr_file = hr_file.with_name(hr_file.name.replace("_hr", "_lr"))
        hr = cv2.imread(str(hr_file), cv2.IMREAD_COLOR)[..., ::-1]
        lr = cv2.imread(str(lr_file), cv2.IMREAD_COLOR)[..., ::-1]
        pairs.append((np.ascontiguousarray(lr), np.ascontiguousarray(hr)))
    return pairs


def make_tf_dataset(
    path: str | Path, split: str, batch_size: int, *, augment: bool, seed: int, repeat: bool
):
    """A ``tf.data.Dataset`` of ``(lr, hr)`` float32 batches in [0, 255].

    Augmentation (train only): random horizontal/vertical flips and transposes, applied to LR
    and HR together so they stay aligned (the 8 dihedral transforms).
    """
    import tensorflow as tf

    lr, hr = load_split(path, split)
    ds = tf.data.Dataset.from_tensor_slices((lr, hr))
    if repeat:
        ds = ds.shuffle(min(len(lr), 4096), seed=seed, reshuffle_each_iteration=True).repeat()

    def _augment(lr_p, hr_p):
        # One random draw decides all three flips for both images.
        r = tf.random.uniform([3], seed=seed)
        lr_p, hr_p = tf.cond(
            r[0] < 0.5, lambda: (lr_p[:, ::-1], hr_p[:, ::-1]), lambda: (lr_p, hr_p)
        )
        lr_p, hr_p = tf.cond(r[1] < 0.5, lambda: (lr_p[::-1], hr_p[::-1]), lambda: (lr_p, hr_p))
        lr_p, hr_p = tf.cond(
            r[2] < 0.5,
            lambda: (tf.transpose(lr_p, [1, 0, 2]), tf.transpose(hr_p, [1, 0, 2])),
            lambda: (lr_p, hr_p),
        )
        return lr_p, hr_p

    if augment:
        ds = ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), tf.cast(b, tf.float32)))
    return ds.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
