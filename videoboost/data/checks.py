"""What a built dataset is checked on: per-frame statistics measured from the shards, and the
result of a check run.

One row per whole frame: the manifest joined with statistics measured from the shards
themselves, so a manifest that lies about its pixels fails too. The expectations over these
rows and the Great Expectations run live at the MLOps edge, in
:mod:`videoboost.mlops.validation`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from videoboost.config import DatasetConfig
from videoboost.data.shards import (
    DOCS,
    centre_pair,
    iter_frames,
    iter_variants,
    iter_windows,
)
from videoboost.errors import ValidationFailed

# Largest variant_misfit allowed (see there): aligned variants of the bundled corpus measured at
# most 1.15, variants moved by one pixel 1.4 and more (a frame whose content does not change
# along an axis cannot show a move along it, nor does such a move matter).
MAX_VARIANT_MISFIT = 1.25
# Frames with an LR side under this are not measured: on a 32x24 frame x264 at CRF 38 leaves a
# handful of macroblocks, and their damage made an aligned variant measure 1.3.
MISFIT_MIN_SIDE = 48
# Largest window_misfit allowed (see there), grey levels: the neighbours of make run's corpus
# measured 0.4-4.8; a frame of another shot 10 and more. A frame from far off in the same
# static-camera shot can align as well as a neighbour (4-6 measured), which is why the order
# check also reads the manifest's frame indices.
MAX_WINDOW_MISFIT = 8.0

SUITE = "videoboost_dataset"
# Relative to the dataset. DOCS (videoboost.data.shards) is the offline report (the path Data Docs always had, so every
# link to it stays valid); GX's own site, which fetches CDN scripts and a cloud logo, moves to
# GX_SITE.
GX_SITE = Path("gx/uncommitted/data_docs/gx_site/index.html")
# "local_site" is the site every GX file context has; no site setting drops its CDN assets or
# cloud logo (hard-coded in GX's templates), so it only moves, without the "how to" buttons.
GX_SITE_CONFIG = {
    "class_name": "SiteBuilder",
    "show_how_to_buttons": False,
    "store_backend": {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": "uncommitted/data_docs/gx_site/",
    },
    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
}


@dataclass
class Failure:
    expectation: str
    column: str | None
    detail: str


@dataclass
class ValidationResult:
    success: bool
    evaluated: int
    failures: list[Failure] = field(default_factory=list)
    docs: Path | None = None

    def summary(self) -> dict:
        return {
            "success": self.success,
            "evaluated": self.evaluated,
            "failures": [f.__dict__ for f in self.failures],
            "data_docs": str(DOCS),
            "gx_data_docs": str(GX_SITE),
        }

    def report(self) -> str:
        head = f"{self.evaluated - len(self.failures)}/{self.evaluated} expectations hold"
        lines = [head] + [
            f"  FAILED {f.expectation}({f.column}): {f.detail}" for f in self.failures
        ]
        if self.docs:
            lines.append(f"  report: {self.docs}")
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        if not self.success:
            raise ValidationFailed("dataset failed validation:\n" + self.report(), docs=self.docs)


def measure(root: Path, manifest: pd.DataFrame, cfg: DatasetConfig) -> pd.DataFrame:
    """Manifest rows plus what the shards really hold (shapes, dtype, stats, hash, alignment,
    and the LR variants of the ``real`` profile: how many, how far shifted).

    Every frame is re-read: a manifest that lies about its pixels must fail.
    """
    keys = ["m_lr_h", "m_lr_w", "m_hr_h", "m_hr_w", "m_dtype", "m_hr_std", "m_hr_mean",
            "m_hash_ok", "align_mad", "m_variants", "variant_shape_ok", "variant_misfit",
            "variant_distinct", "m_window", "window_shape_ok", "window_misfit"]  # fmt: skip
    measured: dict[str, list] = {k: [] for k in keys}
    order = []
    # Both walk the rows shard by shard in the same order: one frame in memory at a time.
    pairs = zip(
        iter_frames(root, manifest),
        iter_variants(root, manifest),
        iter_windows(root, manifest),
        strict=True,
    )
    for (row, lr, hr), (_, variants), (_, window) in pairs:
        order.append(row.name)
        measured["m_lr_h"].append(lr.shape[0])
        measured["m_lr_w"].append(lr.shape[1])
        measured["m_hr_h"].append(hr.shape[0])
        measured["m_hr_w"].append(hr.shape[1])
        measured["m_dtype"].append(f"{lr.dtype}/{hr.dtype}")
        measured["m_hr_std"].append(float(hr.std()))
        measured["m_hr_mean"].append(float(hr.mean()))
        measured["m_hash_ok"].append(hashlib.sha1(hr.tobytes()).hexdigest() == row.content_hash)
        measured["align_mad"].append(_alignment_gap(lr, hr))
        measured["m_variants"].append(0 if variants is None else len(variants))
        ok = variants is None or (variants.dtype == np.uint8 and variants.shape[1:] == lr.shape)
        measured["variant_shape_ok"].append(bool(ok))
        shift, distinct = 1.0, True
        if variants is not None and ok and len(variants):
            shift = max(variant_misfit(v, hr) for v in variants)
            # A variant identical to the clean shrink teaches nothing the clean share does not.
            distinct = all(not np.array_equal(v, lr) for v in variants)
        measured["variant_misfit"].append(shift)
        measured["variant_distinct"].append(distinct)
        entries = 1 + (0 if variants is None else len(variants))
        k = cfg.window
        measured["m_window"].append(0 if window is None else window.shape[1] // 2)
        measured["window_shape_ok"].append(
            window is None
            or (window.dtype == np.uint8 and window.shape == (entries, 2 * k, *lr.shape))
        )
        measured["window_misfit"].append(
            window_misfit(lr, window[0]) if window is not None and window.ndim == 5 else 0.0
        )
    df = manifest.loc[order].assign(**measured)
    if "variants" not in df:  # a dataset from before LR variants existed
        df["variants"] = 0
    df["variants"] = df["variants"].fillna(0).astype(int)
    # Integer sides: a frame whose HR is not exactly scale x its LR fails the ratio checks.
    df["ratio_h"] = df["m_hr_h"] / df["m_lr_h"]
    df["ratio_w"] = df["m_hr_w"] / df["m_lr_w"]
    splits_per_hash = manifest.groupby("content_hash")["split"].nunique()
    df["leaked"] = df["content_hash"].map(splits_per_hash).gt(1)
    df["split_count"] = df["split"].map(manifest["split"].value_counts())
    df["window_order_ok"], df["window_leak"] = _window_checks(df)
    return df.reset_index(drop=True)


def _window_used(text: object) -> dict[int, int]:
    """The manifest's ``window`` cell, ``"-1:11 +1:13"``, as ``{offset: frame index}``."""
    if not isinstance(text, str) or text in ("", "synthetic"):
        return {}
    return {int(d): int(j) for d, j in (part.split(":") for part in text.split())}


def _window_checks(df: pd.DataFrame) -> tuple[list[bool], list[bool]]:
    """Per row: are the window's frames in time order around the centre (each neighbour at
    most its offset away, on its side, nearer ones first), and does any of them come from
    the part of the clip the other split holds (a leak)."""
    if "window" not in df:
        return [True] * len(df), [False] * len(df)
    bounds = {
        (src, split): (g.frame_index.min(), g.frame_index.max())
        for (src, split), g in df[df.source_kind == "video"].groupby(["source", "split"])
    }
    order_ok, leak = [], []
    for row in df.itertuples():
        used = _window_used(row.window)
        i = row.frame_index
        ok = all(
            (d < 0 and i + d <= j <= i) or (d > 0 and i <= j <= i + d) for d, j in used.items()
        )
        ok = ok and all(
            abs(used[d] - i) >= abs(used[d - (1 if d > 0 else -1)] - i)
            for d in used
            if abs(d) > 1 and d - (1 if d > 0 else -1) in used
        )
        order_ok.append(bool(ok))
        other = "val" if row.split == "train" else "train"
        lo_hi = bounds.get((row.source, other))
        leak.append(
            bool(
                lo_hi is not None
                and any(
                    (j >= lo_hi[0]) if other == "val" else (j <= lo_hi[1]) for j in used.values()
                )
            )
        )
    return order_ok, leak


def window_misfit(centre: np.ndarray, neighbours: np.ndarray) -> float:
    """Largest mean absolute difference (grey levels) between the clean LR centre frame and a
    neighbour aligned onto it with the video tier's own optical flow (centre crop of at most
    256 px, a 4 px border left out). Aligned neighbours of one shot leave little (noise,
    occlusions); a frame from elsewhere cannot be aligned and leaves a lot."""
    from videoboost.data.align import align_to

    def crop(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        y, x = max(0, (h - 256) // 2), max(0, (w - 256) // 2)
        return img[y : y + 256, x : x + 256]

    c = crop(centre)
    worst = 0.0
    for n in neighbours:
        a = align_to(c, crop(n))
        diff = cv2.absdiff(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(c, cv2.COLOR_RGB2GRAY))
        worst = max(worst, float(diff[4:-4, 4:-4].mean()))
    return worst


def variant_misfit(lr: np.ndarray, hr: np.ndarray, radius: int = 2) -> float:
    """How much better an LR frame fits its area-shrunk HR frame when moved by a whole pixel:
    the mean squared difference at no shift over the smallest one at any shift of up to
    ``radius`` LR pixels (grey levels, both lightly blurred, centre crop of at most 256 px).

    1.0 means no shift fits better: the pair is aligned. Blur, noise and coding add the same
    difference at every shift; a variant cut one pixel off measured 1.4-1.9 on the bundled
    corpus, aligned ones at most 1.15. Phase correlation was tried first: JPEG and H.264 block
    edges pulled its peak to whole pixels on aligned frames.
    """
    lr_c, hr_c = centre_pair(lr, hr, 256)
    shrunk = cv2.resize(hr_c, lr_c.shape[1::-1], interpolation=cv2.INTER_AREA)

    def grey(img: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return cv2.GaussianBlur(g, (0, 0), 1.0)

    if min(lr_c.shape[:2]) < MISFIT_MIN_SIDE:
        return 1.0  # a few macroblocks: coding damage there is not a shift, and looks like one
    a, b = grey(shrunk), grey(lr_c)
    h, w = a.shape
    r = radius
    core = a[r : h - r, r : w - r]
    err = np.array(
        [
            [np.mean((core - b[r + dy : h - r + dy, r + dx : w - r + dx]) ** 2) for dx in range(-r, r + 1)]
            for dy in range(-r, r + 1)
        ]
    )  # fmt: skip
    return float(err[r, r] / max(float(err.min()), 1e-6))


def _alignment_gap(lr: np.ndarray, hr: np.ndarray) -> float:
    """Mean absolute difference between LR and the area-shrunk HR, grey levels.

    A misaligned (shifted, swapped, wrongly scaled) pair shows as a large gap. Measured on a
    centre crop of at most 256 LR pixels a side: alignment is global, and whole 1080p frames
    would make validation slow for nothing.
    """
    s = hr.shape[0] // max(lr.shape[0], 1)
    if s < 1 or hr.shape[0] != s * lr.shape[0] or hr.shape[1] != s * lr.shape[1]:
        shrunk = cv2.resize(hr, lr.shape[1::-1], interpolation=cv2.INTER_AREA)
        return float(np.abs(shrunk.astype(np.float32) - lr).mean())
    lr_c, hr_c = centre_pair(lr, hr, 256)
    shrunk = cv2.resize(hr_c, lr_c.shape[1::-1], interpolation=cv2.INTER_AREA)
    return float(np.abs(shrunk.astype(np.float32) - lr_c).mean())
