"""Real-file input (issue 19): the `real` degradation profile, the coded benchmark tracks and the
promotion gate that weighs them. Real codecs (libx264 through PyAV, libjpeg), real datasets,
real Great Expectations runs."""

from __future__ import annotations

import numpy as np
import pytest
from media import texture, write_clip

from videoboost.config import BenchmarkConfig, DegradeConfig, PromoteConfig, RealDegradeConfig
from videoboost.data.degrade import (
    apply_recipe,
    downscale,
    h264_roundtrip,
    mod_crop,
    real_variants,
    sample_recipe,
)
from videoboost.evaluation.benchmark import TRACK_CODINGS, build_benchmark, evaluate, track_key
from videoboost.mlops.registry import decide
from videoboost.mlops.validation import MAX_VARIANT_MISFIT, validate_dataset, variant_misfit

TRACKS = ("clean", "h264_crf23", "h264_crf30", "jpeg_q50")


def _shift_px(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """The whole-pixel shift (within 3 px) that best maps ``b`` onto ``a`` (grey levels)."""
    ga, gb = a.mean(-1), b.mean(-1)
    r = 3
    h, w = ga.shape
    core = ga[r : h - r, r : w - r]
    err = {
        (dy, dx): float(np.mean((core - gb[r + dy : h - r + dy, r + dx : w - r + dx]) ** 2))
        for dy in range(-r, r + 1)
        for dx in range(-r, r + 1)
    }
    return min(err, key=err.get)


# --------------------------------------------------------------------------- the profile


def test_h264_round_trip_is_aligned_lossy_and_keeps_odd_sizes():
    lr = downscale(texture(4 * 45, 4 * 61, seed=2), 4)  # 45x61: odd sides, padded for 4:2:0
    coded = h264_roundtrip(lr[None], crf=30)[0]
    assert coded.shape == lr.shape and coded.dtype == np.uint8
    assert not np.array_equal(coded, lr)
    assert _shift_px(lr.astype(np.float32), coded.astype(np.float32)) == (0, 0)
    # Higher CRF, more damage.
    gentle = h264_roundtrip(lr[None], crf=18)[0]
    assert np.abs(gentle.astype(int) - lr).mean() < np.abs(coded.astype(int) - lr).mean()


def test_h264_round_trip_is_repeatable():
    # The benchmark's coded tracks must not move between builds: the shipped bases' cards are
    # checked against them within 0.02 dB.
    clip = np.stack([downscale(texture(4 * 68, 4 * 160, seed=s), 4) for s in range(8)])
    first = h264_roundtrip(clip, crf=30)
    for _ in range(4):
        np.testing.assert_array_equal(h264_roundtrip(clip, crf=30), first)


def test_real_variants_are_aligned_differ_from_the_clean_shrink_and_are_seeded():
    hr = mod_crop(texture(200, 264, seed=5), 4)
    cfg = DegradeConfig(profile="real", real=RealDegradeConfig(variants=8))
    clean = downscale(hr, 4)
    a, labels = real_variants(hr, cfg, np.random.default_rng(7))
    b, _ = real_variants(hr, cfg, np.random.default_rng(7))
    c, _ = real_variants(hr, cfg, np.random.default_rng(8))
    assert a.shape == (8, *clean.shape) and a.dtype == np.uint8
    assert np.array_equal(a, b)  # the same seed gives the same variants
    assert not np.array_equal(a, c)
    assert len(set(labels)) > 1
    for v, label in zip(a, labels, strict=True):
        assert not np.array_equal(v, clean), label  # every variant adds a degradation
        assert _shift_px(clean.astype(np.float32), v.astype(np.float32)) == (0, 0), label
        assert variant_misfit(v, hr) <= MAX_VARIANT_MISFIT, label


@pytest.mark.parametrize("codec", ["h264", "jpeg"])
def test_each_codec_of_the_profile_is_drawn_and_keeps_alignment(codec):
    """Force one codec (share 1) with every other step on: the output still lines up."""
    shares = (
        {"jpeg_prob": 1.0, "h264_prob": 0.0}
        if codec == "jpeg"
        else {"jpeg_prob": 0.0, "h264_prob": 1.0}
    )
    real = RealDegradeConfig(blur_prob=1, noise_prob=1, aniso_prob=1, **shares)
    hr = mod_crop(texture(160, 200, seed=3), 4)
    recipe = sample_recipe(real, np.random.default_rng(0))
    assert codec in recipe and "blur" in recipe and "noise" in recipe
    lr = apply_recipe(hr, 4, recipe)
    assert lr.shape == (40, 50, 3)
    assert _shift_px(downscale(hr, 4).astype(np.float32), lr.astype(np.float32)) == (0, 0)


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="h264_crf"):
        RealDegradeConfig(h264_crf=(30, 20))
    with pytest.raises(ValueError, match="one codec"):
        RealDegradeConfig(jpeg_prob=0.6, h264_prob=0.6)


# --------------------------------------------------------------------------- datasets


def test_a_real_dataset_stores_validated_variants(tmp_path, tiny_cfg):
    from videoboost.data.shards import load_manifest, load_variants
    from videoboost.mlops.validation import build_validated_dataset

    cfg = tiny_cfg.model_copy(
        update={"degrade": DegradeConfig(profile="real", real=RealDegradeConfig(variants=3))}
    )
    info = build_validated_dataset([write_clip(tmp_path / "a.avi", n=12)], tmp_path / "ds", cfg,
                         progress=False)  # fmt: skip
    assert info.validation["success"]
    rows = load_manifest(info.path)
    assert set(rows["variants"]) == {3}
    assert all(len(r.split("; ")) == 3 for r in rows["recipes"])
    variants = load_variants(info.path, rows)
    assert all(v.shape == (3, r.lr_h, r.lr_w, 3) for v, r in zip(variants, rows.itertuples(),
                                                                  strict=True))  # fmt: skip


def test_a_dataset_whose_variants_are_misaligned_is_refused(tmp_path, tiny_cfg):
    from videoboost.mlops.validation import build_validated_dataset

    cfg = tiny_cfg.model_copy(
        update={"degrade": DegradeConfig(profile="real", real=RealDegradeConfig(variants=2))}
    )
    clip = write_clip(tmp_path / "a.avi", n=12, h=192, w=256)
    root = build_validated_dataset([clip], tmp_path / "ds", cfg, progress=False).path
    # Move the stored variants of every training frame by two LR pixels (as a builder that
    # cut them from the wrong place would), leaving the clean LR and the HR intact.
    for shard in sorted((root / "shards").glob("train-*.npz")):
        with np.load(shard) as z:
            arrays = {k: z[k].copy() for k in z.files}
        for key in [k for k in arrays if k.startswith("lrv_")]:
            arrays[key] = np.roll(arrays[key], 2, axis=2)
        np.savez(shard, **arrays)
    result = validate_dataset(root)
    assert not result.success
    failed = {(f.expectation, f.column) for f in result.failures}
    assert ("expect_column_values_to_be_between", "variant_misfit") in failed, failed
    assert "variant_misfit" in result.report()


# --------------------------------------------------------------------------- the tracks


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "bench.avi", n=6, h=96, w=128, seed=4)


def test_coded_tracks_are_built_once_and_cached(clip, tmp_path):
    cfg = BenchmarkConfig(frames=6, segments=2, fps_runs=0, tracks=TRACKS)
    before = TRACK_CODINGS["count"]
    bench = build_benchmark(4, [clip], cfg, cache_dir=tmp_path / "b")
    assert not bench.cached and bench.tracks == TRACKS
    assert TRACK_CODINGS["count"] - before == 3  # one coding per coded track
    again = build_benchmark(4, [clip], cfg, cache_dir=tmp_path / "b")
    assert again.cached and TRACK_CODINGS["count"] - before == 3  # read back, not coded again
    for t in TRACKS[1:]:
        a, b = bench.track(t).items[0].lr, again.track(t).items[0].lr
        assert np.array_equal(a, b)
        assert a.shape == bench.items[0].lr.shape and not np.array_equal(a, bench.items[0].lr)
    # Heavier coding damages more; every track keeps the same ground truth.
    damage = {
        t: np.abs(bench.track(t).items[0].lr.astype(int) - bench.items[0].lr).mean()
        for t in TRACKS[1:]
    }
    assert damage["h264_crf23"] < damage["h264_crf30"]
    assert build_benchmark(4, [clip], BenchmarkConfig(frames=6, segments=2, fps_runs=0,
                           tracks=("clean",)), cache_dir=tmp_path / "b").version != bench.version  # fmt: skip


def test_every_track_is_scored_against_bicubic_of_its_own_input(clip, tmp_path):
    from videoboost.data.degrade import upscale_bicubic

    cfg = BenchmarkConfig(frames=6, segments=2, fps_runs=0, tracks=TRACKS)
    bench = build_benchmark(4, [clip], cfg, cache_dir=tmp_path / "b")

    def bicubic(batch):  # a "model" that is bicubic: its gain is 0 on every track
        return np.stack([upscale_bicubic(np.rint(x).astype(np.uint8), 4) for x in batch]).astype(
            np.float32
        )

    report = evaluate(bicubic, 4, bench, cfg)
    m = report.metrics
    assert report.tracks == list(TRACKS)
    for t in TRACKS:
        assert abs(m[track_key("bench_psnr_gain", t)]) < 1e-9
    # Coded input is worse input: bicubic of it scores lower than bicubic of the clean shrink.
    assert m["bench_psnr_bicubic_h264_crf30"] < m["bench_psnr_bicubic"]
    assert m["bench_psnr_mean"] == pytest.approx(
        np.mean([m[track_key("bench_psnr", t)] for t in TRACKS])
    )
    assert report.sample_track == "h264_crf30"
    table = report.table()
    for t in TRACKS:
        assert f"\n  {t} " in table
    assert "mean over tracks" in table


# --------------------------------------------------------------------------- the gate


def _metrics(psnr: dict[str, float], bicubic: float = 30.0) -> dict[str, float]:
    m = {}
    for t, p in psnr.items():
        m[track_key("bench_psnr", t)] = p
        m[track_key("bench_psnr_bicubic", t)] = bicubic
        m[track_key("bench_psnr_gain", t)] = p - bicubic
        m[track_key("bench_ssim", t)] = 0.9
    m["bench_psnr_mean"] = float(np.mean(list(psnr.values())))
    m["bench_psnr_gain_mean"] = m["bench_psnr_mean"] - bicubic
    return m


def test_the_gate_refuses_a_win_on_the_mean_that_loses_one_track():
    champion = _metrics({"clean": 32.0, "h264_crf23": 31.0, "h264_crf30": 30.5, "jpeg_q50": 30.5})
    # +1 dB on three tracks, -0.8 dB on clean: the mean is +0.55 dB.
    candidate = _metrics({"clean": 31.2, "h264_crf23": 32.0, "h264_crf30": 31.5, "jpeg_q50": 31.5})
    ok, reason, challenger = decide(candidate, champion, PromoteConfig())
    assert not ok and challenger
    assert "clean track" in reason and "-0.800" in reason and "per-track tolerance" in reason
    # Within the tolerance the mean decides.
    looser = PromoteConfig(track_tolerance_db=1.0)
    ok, reason, _ = decide(candidate, champion, looser)
    assert ok and "bench_psnr_mean" in reason


def test_the_first_real_model_can_replace_a_clean_champion_by_default():
    """A few tenths lost on clean input, a dB won on each coded track: promoted."""
    clean_model = _metrics(
        {"clean": 32.3, "h264_crf23": 30.4, "h264_crf30": 29.0, "jpeg_q50": 29.6}
    )
    real_model = _metrics({"clean": 32.0, "h264_crf23": 31.6, "h264_crf30": 30.0, "jpeg_q50": 30.7})
    ok, reason, _ = decide(real_model, clean_model, PromoteConfig())
    assert ok, reason
    # ... but the same clean loss cannot pass when nothing is gained elsewhere.
    ok, _, _ = decide(_metrics({**{"clean": 32.0}, **{t: 29.0 for t in TRACKS[1:]}}),
                      _metrics({**{"clean": 32.6}, **{t: 29.0 for t in TRACKS[1:]}}),
                      PromoteConfig())  # fmt: skip
    assert not ok


def test_reports_from_before_the_tracks_still_compare_on_the_clean_psnr():
    old = {"bench_psnr": 31.0, "bench_psnr_gain": 1.0, "bench_ssim": 0.9}
    new = {"bench_psnr": 31.2, "bench_psnr_gain": 1.2, "bench_ssim": 0.9}
    ok, reason, _ = decide(new, old, PromoteConfig())
    assert ok and "bench_psnr" in reason
