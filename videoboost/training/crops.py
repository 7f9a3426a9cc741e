"""Fresh aligned random crops from whole frames, drawn anew for every training step.

A dataset stores whole LR/HR frames (:mod:`videoboost.data.shards`); this module cuts the training
batches. Each crop picks a unit at random (every video and every still counts once, so one long
clip cannot dominate), a frame of it, an LR window of ``crop`` pixels and the HR window
``scale`` times larger at the same place, and one of the eight dihedral transforms applied to
both. An epoch is therefore a number of steps, never a pass over a fixed list of patches.

The cropping runs inside the ``tf.data`` graph: the frames live in two flat byte tensors (no
padding, so mixed frame sizes cost no memory) and a crop is one ``gather`` of computed offsets.
A Python generator feeding ``fit`` (``Dataset.from_generator``) made a fast-tier step twice as
slow as the model alone, even when it only handed over ready arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DIHEDRAL = 8  # rotations by 0/90/180/270 degrees, each with and without a mirror
_ATTEMPTS = 4  # draws of a crop position before a flat crop is accepted


def dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """Transform ``k`` (0..7) of the dihedral group on an ``(H, W, C)`` image: rotate by
    ``k % 4`` quarter turns counter-clockwise, then mirror left-right when ``k >= 4``
    (what :func:`make_tf_dataset` does with ``tf.image.rot90`` and ``flip_left_right``)."""
    out = np.rot90(img, k % 4)
    return out[:, ::-1] if k >= 4 else out


@dataclass(frozen=True)
class CropPlan:
    """Whole frames flattened for in-graph cropping, and how crops are drawn from them.

    Build with :meth:`from_frames`. ``units`` lists, per sampling unit, the indices of its frames.
    """

    lr_flat: np.ndarray  # every LR entry's bytes, concatenated (per frame: clean, variants...)
    hr_flat: np.ndarray
    lr_offsets: np.ndarray  # (entries,) int64 start of LR entry j in lr_flat
    hr_offsets: np.ndarray  # (n,) int64 start of frame i's HR in hr_flat
    sizes: np.ndarray  # (n, 2) int64 LR (height, width)
    unit_frames: np.ndarray  # frame indices, unit by unit
    unit_starts: np.ndarray  # (units,) start of each unit in unit_frames
    unit_counts: np.ndarray  # (units,) frames per unit
    scale: int
    crop: int
    augment: bool = True
    min_std: float = 1.0  # on the LR crop, grey levels
    entry_starts: np.ndarray | None = None  # (n,) frame i's first LR entry (its clean LR)
    entry_counts: np.ndarray | None = None  # (n,) 1 + frame i's variants
    clean_share: float = 1.0  # share of crops cut from the clean LR of a frame with variants
    channels: int = 3  # LR channels: 3, or 3 * (2k + 1) for the video tier's aligned windows

    @classmethod
    def from_frames(
        cls,
        frames: Sequence[tuple[np.ndarray, np.ndarray]],
        groups: Sequence[object],
        scale: int,
        crop: int,
        *,
        augment: bool = True,
        min_std: float = 1.0,
        variants: Sequence[np.ndarray | None] | None = None,
        clean_share: float = 0.0,
    ) -> CropPlan:
        """Args:
            frames: ``[(lr, hr), ...]`` uint8 RGB, ``hr`` exactly ``scale`` times ``lr``; for
                the video tier ``lr`` is an aligned window stacked along channels, ``(h, w,
                3 * (2k + 1))`` centre first (:mod:`videoboost.data.align`), the same for every
                frame, and ``hr`` is the centre frame's.
            groups: the sampling unit of each frame (e.g. its source); units are drawn with
                equal probability, then a frame within the unit.
            scale: HR/LR side ratio.
            crop: LR crop side (HR crop side is ``crop * scale``).
            augment: apply a random dihedral transform to each crop.
            min_std: redraw (up to 4 times) crops whose LR standard deviation is below this:
                flat sky and letterbox bars teach nothing and skew the loss.
            variants: per frame, ``(k, h, w, 3)`` uint8 degraded LR variants aligned with its
                HR (the ``real`` profile), or None. A crop of such a frame is cut from one
                variant drawn at random, or from the clean LR with probability
                ``clean_share``.
            clean_share: see ``variants``.

        Raises:
            ValueError: no frames, a frame smaller than the crop, or an LR/HR size mismatch.
        """
        if not frames:
            raise ValueError("no frames to crop from")
        if len(groups) != len(frames):
            raise ValueError(f"{len(groups)} groups for {len(frames)} frames")
        channels = frames[0][0].shape[-1]
        for i, (lr, hr) in enumerate(frames):
            if lr.ndim != 3 or lr.shape[2] != channels or channels % 3 or hr.shape != (
                lr.shape[0] * scale, lr.shape[1] * scale, 3
            ):  # fmt: skip
                raise ValueError(f"frame {i}: HR {hr.shape} is not x{scale} of LR {lr.shape}")
            if min(lr.shape[:2]) < crop:
                raise ValueError(f"frame {i}: LR {lr.shape[:2]} is smaller than the crop {crop}")
        units: dict[object, list[int]] = {}
        for i, g in enumerate(groups):
            units.setdefault(g, []).append(i)
        order = [i for members in units.values() for i in members]
        counts = np.array([len(m) for m in units.values()], np.int64)
        variants = list(variants) if variants is not None else [None] * len(frames)
        if len(variants) != len(frames):
            raise ValueError(f"{len(variants)} variant stacks for {len(frames)} frames")
        entries: list[np.ndarray] = []
        entry_counts = []
        for i, ((lr, _), v) in enumerate(zip(frames, variants, strict=True)):
            extra = [] if v is None else list(v)
            if any(x.shape != lr.shape for x in extra):
                raise ValueError(f"frame {i}: an LR variant is not the size of its LR {lr.shape}")
            entries += [lr, *extra]
            entry_counts.append(1 + len(extra))
        counts_e = np.array(entry_counts, np.int64)
        lr_sizes = np.array([e.size for e in entries], np.int64)
        hr_sizes = np.array([hr.size for _, hr in frames], np.int64)
        return cls(
            lr_flat=np.concatenate([e.ravel() for e in entries]),
            hr_flat=np.concatenate([hr.ravel() for _, hr in frames]),
            lr_offsets=np.concatenate([[0], np.cumsum(lr_sizes)[:-1]]).astype(np.int64),
            hr_offsets=np.concatenate([[0], np.cumsum(hr_sizes)[:-1]]).astype(np.int64),
            sizes=np.array([lr.shape[:2] for lr, _ in frames], np.int64),
            unit_frames=np.array(order, np.int64),
            unit_starts=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
            unit_counts=counts,
            scale=scale,
            crop=crop,
            augment=augment,
            min_std=min_std,
            entry_starts=np.concatenate([[0], np.cumsum(counts_e)[:-1]]).astype(np.int64),
            entry_counts=counts_e,
            clean_share=float(clean_share),
            channels=int(channels),
        )

    @property
    def frames(self) -> int:
        return len(self.sizes)

    @property
    def units(self) -> int:
        return len(self.unit_counts)


def _window(tf, flat, offset, width, y, x, side, channels=3):
    """``(side, side, channels)`` window at ``(y, x)`` of the frame at ``offset`` in ``flat``."""
    rows = tf.range(side, dtype=tf.int64)
    cols = tf.range(side * channels, dtype=tf.int64)  # x and channel interleaved, as stored
    index = offset + ((y + rows)[:, None] * width + x) * channels + cols[None, :]
    return tf.reshape(tf.gather(flat, index), (side, side, channels))


def make_tf_dataset(
    plan: CropPlan, batch_size: int, seed: int = 0, *, start: int = 0, meta: bool = False
):
    """An endless ``tf.data.Dataset`` of ``(lr, hr)`` uint8 crop batches drawn from ``plan``.

    Element ``i`` is cut with the stateless random stream ``(seed, i)``, so the same seed gives
    the same batches whatever the threading; ``start`` skips that many crops (a resumed run
    continues the stream where its checkpoint left it). uint8 crosses the pipeline (a quarter of
    float32's bytes); the train step casts. With ``meta``, each element also carries
    ``(frame, y, x, k, variant)`` per crop (for tests; ``variant`` 0 is the clean LR, ``j`` the
    frame's ``j``-th stored variant).
    """
    import tensorflow as tf

    p, s = plan.crop, plan.scale
    lr_flat = tf.constant(plan.lr_flat)
    hr_flat = tf.constant(plan.hr_flat)
    lr_off = tf.constant(plan.lr_offsets)
    hr_off = tf.constant(plan.hr_offsets)
    sizes = tf.constant(plan.sizes)
    unit_frames = tf.constant(plan.unit_frames)
    unit_starts = tf.constant(plan.unit_starts)
    unit_counts = tf.constant(plan.unit_counts)
    min_std = tf.constant(plan.min_std, tf.float32)
    n = plan.frames
    entry_starts = tf.constant(
        plan.entry_starts if plan.entry_starts is not None else np.arange(n, dtype=np.int64)
    )
    entry_counts = tf.constant(
        plan.entry_counts if plan.entry_counts is not None else np.ones(n, np.int64)
    )
    clean_share = tf.constant(plan.clean_share, tf.float32)

    def draw(i):
        key = tf.stack([tf.constant(seed, tf.int64), i])
        # The last two draws pick the LR entry (clean or a variant); they come after the ones a
        # plan without variants uses.
        r = tf.random.stateless_uniform([2 + 2 * _ATTEMPTS + 3], key, dtype=tf.float32)
        unit = tf.minimum(tf.cast(r[0] * plan.units, tf.int64), plan.units - 1)
        count = unit_counts[unit]
        pick = tf.minimum(tf.cast(r[1] * tf.cast(count, tf.float32), tf.int64), count - 1)
        frame = unit_frames[unit_starts[unit] + pick]
        h, w = sizes[frame, 0], sizes[frame, 1]
        n_var = entry_counts[frame] - 1
        pick_v = tf.minimum(tf.cast(r[-1] * tf.cast(n_var, tf.float32), tf.int64), n_var - 1)
        use_clean = tf.logical_or(n_var == 0, r[-2] < clean_share)
        entry = entry_starts[frame] + tf.where(use_clean, tf.constant(0, tf.int64), 1 + pick_v)
        best = None
        # A few positions; the first that is not flat wins (else the last drawn).
        for a in range(_ATTEMPTS):
            y = tf.minimum(tf.cast(r[2 + 2 * a] * tf.cast(h - p + 1, tf.float32), tf.int64), h - p)
            x = tf.minimum(tf.cast(r[3 + 2 * a] * tf.cast(w - p + 1, tf.float32), tf.int64), w - p)
            lr = _window(tf, lr_flat, lr_off[entry], w, y, x, p, plan.channels)
            std = tf.math.reduce_std(tf.cast(lr, tf.float32))
            if best is None:
                best = (y, x, lr, std >= min_std)
            else:
                take = tf.logical_not(best[3])
                best = (
                    tf.where(take, y, best[0]),
                    tf.where(take, x, best[1]),
                    tf.where(take, lr, best[2]),
                    tf.logical_or(best[3], std >= min_std),
                )
        y, x, lr = best[0], best[1], best[2]
        hr = _window(tf, hr_flat, hr_off[frame], w * s, y * s, x * s, p * s)
        k = tf.constant(0, tf.int64)
        if plan.augment:
            k = tf.minimum(tf.cast(r[2 + 2 * _ATTEMPTS] * DIHEDRAL, tf.int64), DIHEDRAL - 1)
            quarter = tf.cast(k % 4, tf.int32)
            lr, hr = tf.image.rot90(lr, quarter), tf.image.rot90(hr, quarter)
            lr, hr = tf.cond(
                k >= 4,
                lambda: (tf.image.flip_left_right(lr), tf.image.flip_left_right(hr)),
                lambda: (lr, hr),
            )
        lr = tf.ensure_shape(lr, (p, p, plan.channels))
        hr = tf.ensure_shape(hr, (p * s, p * s, 3))
        if meta:
            return lr, hr, tf.stack([frame, y, x, k, entry - entry_starts[frame]])
        return lr, hr

    ds = tf.data.Dataset.range(start, 2**62).map(draw, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
