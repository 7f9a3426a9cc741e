"""What a run trains and validates on: the whole validation frames and the crop plan of a
dataset (the real profile's variants, the video tier's aligned windows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from videoboost.config import TrainConfig
from videoboost.data.align import align_stack
from videoboost.data.shards import (
    centre_pair,
    load_config,
    load_frames,
    load_variants,
    load_windows,
)
from videoboost.errors import VideoBoostError
from videoboost.training.crops import CropPlan

# Keys logged every epoch; MLflow and the CLI table use exactly these names.


def validation_frames(
    dataset_dir: str | Path, cfg: TrainConfig
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(lr, hr)`` pairs scored every epoch, centre-cropped to ``cfg.val_max_side``.

    A ``real`` dataset is judged on what it trains for: every other frame's LR is one of its
    degraded variants (taken in turn), the rest stay clean, so ``val_psnr`` (and the best
    epoch it picks) weighs both kinds of input.
    """
    frames, rows = load_frames(dataset_dir, "val", limit=cfg.val_frames)
    k = cfg.generator.window
    windows = _dataset_windows(dataset_dir, rows, k)
    picks = [0] * len(frames)  # LR entry of each frame: 0 the clean shrink, j its variant j
    if load_config(dataset_dir).degrade.profile == "real":
        variants = load_variants(dataset_dir, rows)
        for i, v in enumerate(variants):
            if v is not None and len(v) and i % 2:
                picks[i] = 1 + (i // 2) % len(v)
                frames[i] = (v[picks[i] - 1], frames[i][1])
    if windows is not None:
        frames = [
            (align_stack(lr, w[picks[i], : 2 * k]), hr)
            for i, ((lr, hr), w) in enumerate(zip(frames, windows, strict=True))
        ]
    return [centre_pair(lr, hr, cfg.val_max_side) for lr, hr in frames]


def _dataset_windows(dataset_dir: str | Path, rows, k: int) -> list[np.ndarray] | None:
    """The stored window neighbours of ``rows`` for a video-tier model of ``k`` (None when
    ``k`` is 0: a single-frame model ignores them).

    Raises:
        VideoBoostError: the dataset holds no windows, or narrower ones than ``k``.
    """
    if not k:
        return None
    have = load_config(dataset_dir).window
    if have < k:
        raise VideoBoostError(
            f"dataset {dataset_dir} stores windows of {have} neighbour(s) a side, the video "
            f"tier needs {k}; rebuild it with `videoboost dataset build --window {k}`"
        )
    return load_windows(dataset_dir, rows)


def crop_plan(dataset_dir: str | Path, cfg: TrainConfig) -> CropPlan:
    """The training frames in memory, and how crops are drawn from them."""
    frames, rows = load_frames(dataset_dir, "train")
    keep = [i for i, (lr, _) in enumerate(frames) if min(lr.shape[:2]) >= cfg.crop]
    if not keep:
        raise VideoBoostError(
            f"dataset {dataset_dir}: no training frame has an LR side of {cfg.crop} px for the "
            f"crop; lower `crop` (now {cfg.crop}) or build from larger footage"
        )
    # Every still is its own unit, every video one unit: one long clip cannot dominate.
    groups = [
        f"{r.source}#{r.frame_index}" if r.source_kind == "still" else r.source
        for r in rows.itertuples()
    ]
    # The `real` profile: crops come from the stored codec-damaged variants, and from the clean
    # shrink at the profile's clean share.
    degrade_cfg = load_config(dataset_dir).degrade
    variants = load_variants(dataset_dir, rows) if degrade_cfg.profile == "real" else None
    k = cfg.generator.window
    windows = _dataset_windows(dataset_dir, rows, k)
    if windows is not None:
        # The video tier crops aligned windows: align every LR entry (clean and each variant)
        # once here, on whole frames as inference does, then crop the stacks in the graph.
        for i in keep:
            lr, hr = frames[i]
            frames[i] = (align_stack(lr, windows[i][0, : 2 * k]), hr)
            if variants is not None and variants[i] is not None:
                variants[i] = np.stack(
                    [align_stack(v, windows[i][1 + j, : 2 * k]) for j, v in enumerate(variants[i])]
                )
    return CropPlan.from_frames(
        [frames[i] for i in keep],
        [groups[i] for i in keep],
        cfg.generator.scale,
        cfg.crop,
        augment=cfg.augment,
        variants=[variants[i] for i in keep] if variants is not None else None,
        clean_share=degrade_cfg.real.clean_share if variants is not None else 0.0,
    )
