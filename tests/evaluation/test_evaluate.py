"""The held-out benchmark and its scores: versioning, bicubic baselines, flicker, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import toys
from media import moving_frames, write_clip, write_video

from videoboost.cli import main
from videoboost.config import BenchmarkConfig, DegradeConfig
from videoboost.data.degrade import degrade, upscale_bicubic
from videoboost.evaluation.benchmark import (
    DEFAULT_SOURCES,
    METRIC_KEYS,
    PSNR_CAP,
    Report,
    build_benchmark,
    evaluate,
    evaluate_keras,
    plan_runs,
)
from videoboost.evaluation.compare import GAP, LABEL_PX, side_by_side
from videoboost.evaluation.metrics import flicker

# Throughput is measured once, untimed assertions only (tests never time things).
FAST = BenchmarkConfig(frames=4, fps_warmup=1, fps_runs=1)


@pytest.fixture
def clip(tmp_path):
    # 66x50: not a multiple of 4, so mod-cropping is exercised.
    return write_clip(tmp_path / "clip.avi", n=5, h=50, w=66, seed=3)


def test_benchmark_is_versioned_cached_and_mod_cropped(clip, tmp_path):
    bench = build_benchmark(4, [clip], FAST)
    assert not bench.cached
    assert (bench.path / "benchmark.json").is_file()
    (item,) = bench.items
    assert item.kind == "video" and item.frames == 4  # capped by frames=4
    assert item.runs == ((0, 2), (3, 2))  # two runs of consecutive frames, spread over 5
    assert item.hr.shape == (4, 48, 64, 3)  # mod-cropped to the scale
    expected_lr = degrade(item.hr[0], DegradeConfig(scale=4))
    np.testing.assert_array_equal(item.lr[0], expected_lr)

    again = build_benchmark(4, [clip], FAST)
    assert again.cached and again.version == bench.version
    np.testing.assert_array_equal(again.items[0].hr, item.hr)
    # Same content elsewhere: same version (paths do not matter).
    copy = tmp_path / "elsewhere.avi"
    copy.write_bytes(clip.read_bytes())
    assert build_benchmark(4, [copy], FAST).version == bench.version
    # Selection, scale and content are part of the version.
    assert build_benchmark(4, [clip], BenchmarkConfig(frames=3)).version != bench.version
    assert build_benchmark(2, [clip], FAST).version != bench.version
    other = write_clip(tmp_path / "other.avi", n=5, h=50, w=66, seed=4)
    assert build_benchmark(4, [other], FAST).version != bench.version


def test_a_benchmark_of_a_clip_and_a_still_on_every_track_loads_from_its_cache(clip, tmp_path):
    import cv2

    still = tmp_path / "still.png"
    cv2.imwrite(str(still), moving_frames(1, 64, 80, seed=5)[0])
    cfg = BenchmarkConfig(frames=4, fps_runs=0)  # every track, the video track included
    bench = build_benchmark(4, [clip, still], cfg)
    assert set(bench.items[0].coded) == set(cfg.tracks) - {"clean"}
    assert "video" not in bench.items[1].coded  # a still has no video track
    again = build_benchmark(4, [clip, still], cfg)
    assert again.cached and again.version == bench.version
    for old, new in zip(bench.items, again.items, strict=True):
        assert set(new.coded) == set(old.coded)
        for track, coded in old.coded.items():
            np.testing.assert_array_equal(new.coded[track], coded)


@pytest.mark.parametrize(
    ("total", "frames", "segments", "runs"),
    [
        (250, 24, 3, [(0, 8), (121, 8), (242, 8)]),
        (10, 24, 3, [(0, 10)]),  # shorter than the cap: the whole clip, one run
        (100, 5, 3, [(0, 3), (98, 2)]),  # no run under 2 frames
        (100, 1, 3, [(0, 1)]),
        (0, 24, 3, []),
    ],
)
def test_frame_runs_are_spread_evenly(total, frames, segments, runs):
    assert plan_runs(total, frames, segments) == runs


def test_default_benchmark_is_the_held_out_sample_media():
    names = [p.name for p in DEFAULT_SOURCES]
    assert "bigbuckbunny.mp4" not in names  # the main job's training clip
    bench = build_benchmark(4, None, BenchmarkConfig(frames=4, segments=2))
    assert [(i.name, i.kind, i.frames) for i in bench.items] == [
        ("bikes.mp4", "video", 4),
        ("chelsea.png", "still", 1),
        ("coffee.png", "still", 1),
    ]
    assert all(i.hr.shape[1] % 4 == 0 and i.hr.shape[2] % 4 == 0 for i in bench.items)
    assert bench.items[0].runs == ((0, 2), (248, 2))  # bikes.mp4 has 250 frames


def test_flicker_is_zero_for_ground_truth_and_grows_with_per_frame_noise():
    truth = moving_frames(4, 32, 40, seed=1)
    assert flicker(truth, truth) == 0.0
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 6, f.shape), 0, 255).astype(np.uint8) for f in truth]
    # The same noise on every frame is stable; fresh noise per frame flickers.
    still_noise = rng.normal(0, 6, truth[0].shape)
    steady = [np.clip(f + still_noise, 0, 255).astype(np.uint8) for f in truth]
    assert flicker(noisy, truth) > 3 * flicker(steady, truth) > 0


def _lookup_predict(bench, noise: float = 0.0):
    """A 'model' returning the ground truth (plus fresh noise per frame) for benchmark inputs."""
    table = {item.lr[i].tobytes(): item.hr[i] for item in bench.items for i in range(item.frames)}
    rng = np.random.default_rng(0)

    def predict(batch: np.ndarray) -> np.ndarray:
        out = []
        for lr in batch:
            key = np.rint(lr).astype(np.uint8).tobytes()
            if key in table:
                hr = table[key].astype(np.float32)
                out.append(hr + rng.normal(0, noise, hr.shape).astype(np.float32))
            else:  # the throughput frame: any correctly sized output
                out.append(np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1))
        return np.stack(out)

    return predict


def test_evaluate_scores_a_predict_function_against_bicubic(clip):
    bench = build_benchmark(4, [clip], FAST)
    perfect = evaluate(_lookup_predict(bench), 4, bench, FAST, model="truth")
    m = perfect.metrics
    assert m["bench_flicker"] == 0.0 and m["bench_psnr"] == PSNR_CAP and m["bench_ssim"] == 1.0
    assert m["bench_flicker_bicubic"] > 0
    bic = [upscale_bicubic(lr, 4) for lr in bench.items[0].lr]
    assert m["bench_psnr_bicubic"] < 40 and m["bench_psnr_gain"] == pytest.approx(
        PSNR_CAP - m["bench_psnr_bicubic"]
    )
    noisy = evaluate(_lookup_predict(bench, noise=8.0), 4, bench, FAST).metrics
    assert noisy["bench_flicker"] > 1.0
    assert noisy["bench_psnr"] < PSNR_CAP
    # The clean track's keys, each coded track's (with its name), the means over tracks.
    coded = [t for t in FAST.tracks if t != "clean"]
    extra = {f"{k}_{t}" for k in METRIC_KEYS if k != "bench_fps_720p" for t in coded}
    assert set(m) == set(METRIC_KEYS) | extra | {"bench_psnr_mean", "bench_psnr_gain_mean"}
    assert m["bench_fps_720p"] > 0
    assert perfect.sample["sr"].shape == bic[0].shape


def test_trained_toy_beats_bicubic_and_a_fresh_one_equals_it(clip):
    bench = build_benchmark(4, [clip], FAST)
    fresh = evaluate_keras(toys.generator(0.0), bench, FAST).metrics
    best = evaluate_keras(toys.generator(1.0), bench, FAST).metrics
    half = evaluate_keras(toys.generator(0.5), bench, FAST).metrics
    assert abs(fresh["bench_psnr_gain"]) < 0.1  # zero-initialised last conv: bicubic
    assert best["bench_psnr_gain"] > half["bench_psnr_gain"] + 0.3 > 0.8
    assert best["bench_psnr_bicubic"] == fresh["bench_psnr_bicubic"]  # same frames, same baseline
    # Deterministic: the same model scores the same.
    again = evaluate_keras(toys.generator(1.0), bench, BenchmarkConfig(frames=4, fps_runs=0))
    assert again.metrics["bench_psnr"] == best["bench_psnr"]
    assert "bench_fps_720p" not in again.metrics


def test_report_json_and_table(clip, tmp_path):
    bench = build_benchmark(4, [clip], FAST)
    report = evaluate(_lookup_predict(bench, noise=2.0), 4, bench, FAST, model="m.keras")
    out = tmp_path / "r" / "report.json"
    report.to_json(out)
    data = json.loads(out.read_text())
    assert data["benchmark"]["version"] == bench.version and data["model"] == "m.keras"
    assert set(METRIC_KEYS) <= set(data["metrics"])
    assert data["tracks"] == list(FAST.tracks) and data["sample_track"] == "h264_crf30"
    assert data["sources"][0]["name"] == "clip.avi"
    table = report.table()
    assert "bicubic" in table and "bench_flicker_bicubic=" in table and "fps" in table
    assert isinstance(report, Report)


def test_side_by_side_crops_the_same_place():
    a = np.zeros((40, 60, 3), np.uint8)
    b = np.full((40, 60, 3), 255, np.uint8)
    img = side_by_side([("a", a), ("b", b)], crop=32)
    header = LABEL_PX + 10
    assert img.shape == (header + GAP + 32, 32 * 2 + GAP, 3)
    assert (img[header + GAP :, :32] == 0).all() and (img[header + GAP :, 32 + GAP :] == 255).all()
    two = side_by_side([("a", a), ("b", b)], crop=16, corners=[(0, 0), (20, 40)], zoom=3)
    assert two.shape == (header + 2 * (GAP + 48), 2 * 48 + GAP, 3)
    with pytest.raises(ValueError, match="panel"):
        side_by_side([("a", a), ("small", a[:20])])


def test_cli_evaluate_prints_table_and_writes_json(clip, tmp_path, capsys):
    model = tmp_path / "toy.keras"
    toys.generator(1.0).save(model)
    out = tmp_path / "report.json"
    argv = ["evaluate", str(model), "--videos", str(clip), "--frames", "3", "--fps-runs", "1"]
    assert main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PSNR Y (dB)" in printed and "bicubic" in printed and "bench_psnr_gain=" in printed
    assert json.loads(out.read_text())["metrics"]["bench_psnr_gain"] > 0.5


def test_cli_evaluate_errors_exit_non_zero(clip, tmp_path, capsys):
    model = tmp_path / "toy.keras"
    toys.generator(0.0).save(model)
    assert main(["evaluate", str(tmp_path / "missing.keras"), "--videos", str(clip)]) == 4
    assert main(["evaluate", str(model), "--videos", str(tmp_path / "nope.mp4")]) == 2
    empty = write_video(tmp_path / "tiny.avi", [np.zeros((8, 8, 3), np.uint8)] * 2)
    assert main(["evaluate", str(model), "--videos", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "missing.keras" in err and "nope.mp4" in err and "too small" in err


def test_modules_import_without_tensorflow_or_mlflow():
    code = (
        "import sys\n"
        "import videoboost.evaluation.benchmark, videoboost.mlops.registry, videoboost.cli.evaluate\n"
        "print(sorted(m for m in ('tensorflow', 'mlflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
