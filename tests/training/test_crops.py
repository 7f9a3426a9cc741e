"""Random training crops: aligned under every transform, fair across sources, reproducible."""

from collections import Counter

import numpy as np
import pytest

from videoboost.training.crops import DIHEDRAL, CropPlan, dihedral, make_tf_dataset


def _frames(sizes, scale=4, seed=0):
    """LR noise and HR = LR with every pixel repeated s x s: HR[::s, ::s] is exactly LR."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        lr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out.append((lr, lr.repeat(scale, 0).repeat(scale, 1)))
    return out


def _take(plan, n, seed=0, start=0, batch=16):
    ds = make_tf_dataset(plan, batch, seed, start=start, meta=True)
    lrs, hrs, metas = [], [], []
    for lr, hr, meta in ds.take(n // batch):
        lrs.append(lr.numpy())
        hrs.append(hr.numpy())
        metas.append(meta.numpy())
    return np.concatenate(lrs), np.concatenate(hrs), np.concatenate(metas)


def test_crops_stay_aligned_under_every_transform():
    frames = _frames([(20, 30), (17, 12), (40, 25)])
    plan = CropPlan.from_frames(frames, ["a", "b", "c"], scale=4, crop=8, min_std=0)
    lr, hr, meta = _take(plan, 512)
    assert lr.shape == (512, 8, 8, 3) and hr.shape == (512, 32, 32, 3)
    assert lr.dtype == hr.dtype == np.uint8
    assert set(meta[:, 3]) == set(range(DIHEDRAL))  # every transform was drawn
    for a, b, (f, y, x, k, _) in zip(lr, hr, meta, strict=True):
        src_lr, src_hr = frames[f]
        assert np.array_equal(a, dihedral(src_lr[y : y + 8, x : x + 8], k))
        assert np.array_equal(b, dihedral(src_hr[4 * y : 4 * y + 32, 4 * x : 4 * x + 32], k))
        assert np.array_equal(b[::4, ::4], a)  # the pair itself is aligned


def test_units_are_drawn_equally_however_many_frames_they_hold():
    frames = _frames([(16, 16)] * 11)
    plan = CropPlan.from_frames(frames, ["long clip"] * 10 + ["one photo"], 4, 8, min_std=0)
    _, _, meta = _take(plan, 1024)
    photo_share = np.mean(meta[:, 0] == 10)
    assert 0.4 < photo_share < 0.6
    assert len(Counter(meta[:, 0])) == 11  # every frame of the clip is used


def test_same_seed_same_crops_and_start_continues_the_stream():
    plan = CropPlan.from_frames(_frames([(30, 30), (24, 40)]), ["a", "b"], 4, 8)
    lr1, _, m1 = _take(plan, 64, seed=3)
    lr2, _, m2 = _take(plan, 64, seed=3)
    assert np.array_equal(lr1, lr2) and np.array_equal(m1, m2)
    _, _, other = _take(plan, 64, seed=4)
    assert not np.array_equal(m1, other)
    _, _, tail = _take(plan, 32, seed=3, start=32)
    assert np.array_equal(tail, m1[32:])


def test_flat_crops_are_redrawn():
    lr = np.full((64, 64, 3), 90, np.uint8)
    lr[:, 48:] = np.random.default_rng(0).integers(0, 256, (64, 16, 3), dtype=np.uint8)
    plan = CropPlan.from_frames([(lr, lr.repeat(2, 0).repeat(2, 1))], ["a"], 2, 16, min_std=2)
    crops, _, _ = _take(plan, 256)
    flat = np.mean([c.std() < 2 for c in crops])
    # A uniform position is flat 2/3 of the time; four tries leave (2/3)^4 ~ 0.2.
    assert flat < 0.35


def test_plan_refuses_frames_that_cannot_be_cropped():
    lr = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="smaller than the crop"):
        CropPlan.from_frames([(lr, lr.repeat(4, 0).repeat(4, 1))], ["a"], 4, 16)
    with pytest.raises(ValueError, match="not x4"):
        CropPlan.from_frames([(lr, lr.repeat(2, 0).repeat(2, 1))], ["a"], 4, 8)


def test_variant_crops_come_from_the_drawn_variant_at_the_clean_share():
    """Each crop is cut from one LR entry of its frame (clean or a variant), at the same place
    as its HR crop, and the clean LR is drawn at ``clean_share``."""
    frames = _frames([(24, 24), (20, 28)])
    rng = np.random.default_rng(1)
    # Variant j of a frame is its LR plus j*10 (mod 256): which entry a crop came from shows.
    variants = [np.stack([(lr.astype(int) + 10 * j) % 256 for j in (1, 2, 3)]).astype(np.uint8)
                for lr, _ in frames]  # fmt: skip
    plan = CropPlan.from_frames(
        frames, ["a", "b"], 4, 8, min_std=0, variants=variants, clean_share=0.25
    )
    lr, hr, meta = _take(plan, 1024, seed=int(rng.integers(100)))
    used = meta[:, 4]
    assert set(used) == {0, 1, 2, 3}
    assert 0.18 < np.mean(used == 0) < 0.32  # the clean share
    for a, b, (f, y, x, k, v) in zip(lr, hr, meta, strict=True):
        source = frames[f][0] if v == 0 else variants[f][v - 1]
        assert np.array_equal(a, dihedral(source[y : y + 8, x : x + 8], k))
        assert np.array_equal(b, dihedral(frames[f][1][4 * y : 4 * y + 32, 4 * x : 4 * x + 32], k))


def test_a_variant_of_another_size_is_refused():
    frames = _frames([(24, 24)])
    bad = [np.zeros((1, 24, 20, 3), np.uint8)]
    with pytest.raises(ValueError, match="variant"):
        CropPlan.from_frames(frames, ["a"], 4, 8, variants=bad)
