"""The on-disk layout of a dataset, and reading it back.

A dataset folder holds whole frames, each HR frame (aspect kept, mod-cropped to the scale) beside
its degraded LR twin::

    dataset.json              version, config, sources (used and skipped), counts
    manifest.csv              one row per frame (source, frame, split, shapes, stats, hash, shard)
    shards/train-00000.npz    lr_0000 (h, w, 3) uint8, hr_0000 (s*h, s*w, 3) uint8, lr_0001, ...
                              and, for the ``real`` profile, lrv_0000 (k, h, w, 3) uint8: the
                              frame's k degraded LR variants (``lr_`` stays the clean shrink),
                              and with ``window`` set, lrw_0000: its neighbours in time
    shards/val-00000.npz
    validation.json, gx/      the Great Expectations result and its Data Docs

Frames differ in size, so a shard keeps one ``lr_NNNN``/``hr_NNNN`` array pair per frame rather
than one stacked array; ``manifest.shard_index`` is that NNNN. Training cuts fresh random crops
from these frames every step (:mod:`videoboost.training.crops`).

This module is what the builder (:mod:`videoboost.data.dataset`), the validator
(:mod:`videoboost.mlops.validation`) and training share; it imports none of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from videoboost.config import DatasetConfig
from videoboost.errors import SourceError

FORMAT_VERSION = 2  # 1: fixed patch lists; 2: whole frames
MANIFEST = "manifest.csv"
INFO = "dataset.json"
DOCS = Path("gx/uncommitted/data_docs/local_site/index.html")  # relative to the dataset
MANIFEST_COLUMNS = [
    "frame_id", "source", "source_kind", "frame_index", "split", "lr_h", "lr_w", "hr_h",
    "hr_w", "channels", "dtype", "scale", "lr_mean", "lr_std", "hr_mean", "hr_std",
    "content_hash", "shard", "shard_index", "variants", "recipes", "window",
]  # fmt: skip


@dataclass
class SourceReport:
    path: str
    kind: str  # "video" | "images" | "image"
    content_hash: str = ""
    frames_used: int = 0
    split: str = ""  # "time" (video: split by time), "stills" (folder: split by image), "train"
    skipped: str = ""  # reason, empty when used


@dataclass
class DatasetInfo:
    path: Path
    version: str
    scale: int
    counts: dict[str, int]
    sources: list[SourceReport] = field(default_factory=list)
    cached: bool = False
    validation: dict | None = None

    @property
    def docs(self) -> Path:
        """The Great Expectations Data Docs page of this dataset."""
        return self.path / DOCS

    @property
    def skipped(self) -> list[SourceReport]:
        return [s for s in self.sources if s.skipped]


def frame_key(kind: str, index: int) -> str:
    """Name of frame ``index``'s ``lr``/``hr`` array inside its shard."""
    return f"{kind}_{index:04d}"


def variant_key(index: int) -> str:
    """Name of frame ``index``'s stacked LR variants (``real`` profile) inside its shard."""
    return f"lrv_{index:04d}"


def window_key(index: int) -> str:
    """Name of frame ``index``'s window neighbours inside its shard: ``(1 + variants, 2k, h, w,
    3)`` uint8, per LR entry (the clean shrink, then each variant) its neighbours in stacking
    order (-1, +1, -2, +2, ...; see :mod:`videoboost.data.windows`)."""
    return f"lrw_{index:04d}"


def _iter_optional(
    path: str | Path, rows: pd.DataFrame, key: Callable[[int], str]
) -> Iterator[tuple[pd.Series, np.ndarray | None]]:
    """``(row, array)`` per manifest row, the array named ``key(shard_index)`` or None where
    the shard has none, reading each shard once."""
    root = Path(path)
    for shard, group in rows.groupby("shard", sort=False):
        with np.load(root / "shards" / shard) as z:
            for _, row in group.iterrows():
                name = key(int(row.shard_index))
                yield row, (z[name] if name in z.files else None)


def _in_row_order(
    pairs: Iterator[tuple[pd.Series, np.ndarray | None]], rows: pd.DataFrame
) -> list[np.ndarray | None]:
    by_label = {row.name: v for row, v in pairs}
    return [by_label[label] for label in rows.index]


def iter_windows(
    path: str | Path, rows: pd.DataFrame
) -> Iterator[tuple[pd.Series, np.ndarray | None]]:
    """``(row, neighbours)`` per manifest row (see :func:`window_key`), or None without them."""
    return _iter_optional(path, rows, window_key)


def load_windows(path: str | Path, rows: pd.DataFrame) -> list[np.ndarray | None]:
    """The window neighbours of ``rows`` (see :func:`iter_windows`), in the order of ``rows``."""
    return _in_row_order(iter_windows(path, rows), rows)


def centre_pair(lr: np.ndarray, hr: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The centre ``side`` x ``side`` LR window of an aligned pair and its HR twin (``hr`` an
    exact integer multiple of ``lr``); a frame smaller than ``side`` stays whole on that axis."""
    s = hr.shape[0] // lr.shape[0]
    h, w = lr.shape[:2]
    y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
    lr_c = lr[y : y + side, x : x + side]
    return lr_c, hr[s * y : s * (y + lr_c.shape[0]), s * x : s * (x + lr_c.shape[1])]


def load_info(path: str | Path) -> DatasetInfo:
    """Read ``dataset.json`` of a built dataset."""
    path = Path(path)
    info_file = path / INFO
    if not info_file.is_file():
        raise SourceError(f"{path}: not a VideoBoost dataset (no {INFO}); build one first")
    data = json.loads(info_file.read_text())
    if data.get("format") != FORMAT_VERSION:
        raise SourceError(
            f"{path}: dataset format {data.get('format')} is not the current {FORMAT_VERSION} "
            "(whole frames); rebuild it with `videoboost dataset build`"
        )
    return DatasetInfo(
        path=path,
        version=data["version"],
        scale=data["scale"],
        counts=data["counts"],
        sources=[SourceReport(**s) for s in data["sources"]],
        validation=data.get("validation"),
    )


def load_config(path: str | Path) -> DatasetConfig:
    return DatasetConfig.model_validate(json.loads((Path(path) / INFO).read_text())["config"])


def load_manifest(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(path) / MANIFEST)


def iter_frames(
    path: str | Path, rows: pd.DataFrame
) -> Iterator[tuple[pd.Series, np.ndarray, np.ndarray]]:
    """``(row, lr, hr)`` for each manifest row, reading each shard once (rows grouped by shard)."""
    root = Path(path)
    for shard, group in rows.groupby("shard", sort=False):
        with np.load(root / "shards" / shard) as z:
            for _, row in group.iterrows():
                i = int(row.shard_index)
                yield row, z[frame_key("lr", i)], z[frame_key("hr", i)]


def iter_variants(
    path: str | Path, rows: pd.DataFrame
) -> Iterator[tuple[pd.Series, np.ndarray | None]]:
    """``(row, variants)`` per manifest row: ``(k, h, w, 3)`` uint8 LR variants, or None for a
    frame without any (the ``clean`` profile), reading each shard once."""
    return _iter_optional(path, rows, variant_key)


def load_variants(path: str | Path, rows: pd.DataFrame) -> list[np.ndarray | None]:
    """The LR variants of ``rows`` (see :func:`iter_variants`), in the order of ``rows``."""
    return _in_row_order(iter_variants(path, rows), rows)


def load_frames(
    path: str | Path, split: str, limit: int | None = None
) -> tuple[list[tuple[np.ndarray, np.ndarray]], pd.DataFrame]:
    """Frames of a split as ``([(lr, hr), ...], their manifest rows)``, RGB uint8.

    With ``limit``, that many frames spread evenly over the split (so every source of a small
    validation set is represented), in manifest order.
    """
    manifest = load_manifest(path)
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise SourceError(f"{path}: no {split} frames; rebuild the dataset")
    if limit is not None and len(rows) > limit:
        picks = np.linspace(0, len(rows) - 1, limit).round().astype(int)
        rows = rows.iloc[np.unique(picks)]
    by_label = {row.name: (lr, hr) for row, lr, hr in iter_frames(path, rows)}
    return [by_label[label] for label in rows.index], rows.reset_index(drop=True)
