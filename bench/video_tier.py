"""Benchmark: the video tier against the single-frame tier of the same kind, same minutes, same
data (make run's corpus and settings, built once with windows so both train on the very same
centre frames and degradations).

Prints one row per model: the gain over bicubic on every track of the held-out benchmark (the
``video`` track is the one the video tier is for: the benchmark clip as CRF 23 clips, scored in
order), flicker on the video track, 720p frames/s (the video tier's includes aligning its
neighbours) and the speed ratio; writes ``bench/results/video_tier.json`` and a picture
``docs/video_tier.png``: LR | single-frame | video tier | HR on crops of a benchmark frame from
the middle of a run (so its neighbours are real). Each model is an MLflow run in the
``videoboost-bench`` experiment. Not a test: the numbers depend on the machine (its CPU is in
the JSON).

    .venv/bin/python bench/video_tier.py --minutes 5.5
    .venv/bin/python bench/video_tier.py --minutes 3 --window 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from videoboost.state import configure_environment  # noqa: E402

configure_environment()

from bench.host import host  # noqa: E402
from bench.train import log_run, print_table  # noqa: E402
from flows.main_job import MAIN_JOB_DATASET, MAIN_JOB_TRAIN  # noqa: E402
from videoboost.config import BenchmarkConfig, TrainConfig  # noqa: E402
from videoboost.data.sources import TRAIN_SOURCES  # noqa: E402
from videoboost.evaluation.benchmark import build_benchmark, evaluate_keras, track_key  # noqa: E402
from videoboost.mlops.validation import build_validated_dataset  # noqa: E402
from videoboost.training.train import train  # noqa: E402


def run_tier(generator: dict, minutes: float, dataset, work: Path, bench, overrides: dict):
    data = MAIN_JOB_TRAIN.model_dump()
    data.update(generator=generator, minutes=minutes, sample_every=1000)
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    cfg = TrainConfig.model_validate(data)
    name = cfg.generator.tier + (f"-k{cfg.generator.window}" if cfg.generator.window else "")
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    result = train(dataset.path, cfg, folder, progress=True)
    report = evaluate_keras(result.generator, bench, BenchmarkConfig(fps_runs=9), model=name)
    m = report.metrics
    row = {
        "tier": name,
        "generator": cfg.generator.model_dump(),
        "params": int(result.generator.count_params()),
        "dataset_version": dataset.version,
        "train_minutes": round(result.elapsed_s / 60, 2),
        "steps": result.steps,
        "crops_per_s": round(result.steps * cfg.batch_size / max(result.elapsed_s, 1e-9), 1),
        "ended_by": result.ended_by,
        **{f"gain_{t}": round(m[track_key("bench_psnr_gain", t)], 3) for t in bench.tracks},
        "gain_mean": round(m["bench_psnr_gain_mean"], 3),
        "flicker_video": round(m[track_key("bench_flicker", "video")], 3),
        "flicker_video_bicubic": round(m[track_key("bench_flicker_bicubic", "video")], 3),
        "fps_720p": round(m["bench_fps_720p"], 2),
        "per_clip_gain_video": {
            r["name"]: round(r["psnr"] - r["psnr_bicubic"], 3)
            for r in report.track_sources.get("video", [])
        },
        "per_source_gain": {
            r["name"]: round(r["psnr"] - r["psnr_bicubic"], 3) for r in report.sources
        },
        "gain_curve": [],
        "bench_psnr_gain": round(m["bench_psnr_gain"], 3),
    }
    row["mlflow_run_id"] = log_run(row, cfg, result.generator, folder)
    return row, result.generator


def picture(generators: dict, bench, path: Path) -> None:
    """LR | single-frame | video tier | HR on a video-track frame from the middle of a run."""
    import cv2

    from videoboost.evaluation.compare import detail_corners, side_by_side
    from videoboost.inference.engine import Upscaler, infer_window, keras_predict

    item = bench.track("video").items[0]
    run = item.run_slices()[0]
    mid = (run.stop - run.start) // 2
    hr = item.hr[run][mid]
    lr = item.lr[run][mid]
    panels = [
        ("LR (CRF 23 clip)", cv2.resize(lr, hr.shape[1::-1], interpolation=cv2.INTER_NEAREST))
    ]
    for name, gen in generators.items():
        up = Upscaler(keras_predict(gen), bench.scale, window=infer_window(gen))
        panels.append((name, list(up.upscale_frames(item.lr[run]))[mid]))
    panels.append(("HR", hr))
    img = side_by_side(panels, 96, corners=detail_corners(hr, 96, 2), zoom=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[..., ::-1])


def interleaved_fps(generators: dict, scale: int, rounds: int = 9) -> dict[str, float]:
    """720p-output frames/s of each model, timed in turns (one frame each per round, so load
    on this shared machine hits both alike); the video tier's time includes aligning its
    neighbours, as in :func:`videoboost.evaluation.benchmark.measure_fps`. Medians."""
    import statistics

    from videoboost.evaluation.benchmark import frame_720p
    from videoboost.inference.engine import Upscaler, infer_window, keras_predict

    ups = {
        n: Upscaler(keras_predict(g), scale, window=infer_window(g)) for n, g in generators.items()
    }
    calls = {n: frame_720p(up) for n, up in ups.items()}

    times: dict[str, list[float]] = {n: [] for n in ups}
    for r in range(rounds + 2):
        for n, one in calls.items():
            t0 = time.perf_counter()
            one()
            if r >= 2:  # two warm-up rounds
                times[n].append(time.perf_counter() - t0)
    return {n: round(1 / statistics.median(t), 2) for n, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=MAIN_JOB_TRAIN.minutes)
    parser.add_argument("--trunk", default="fast", choices=["fast", "quality"])
    parser.add_argument("--window", type=int, default=1, choices=[1, 2])
    parser.add_argument("--only", choices=["single", "video"], default=None)
    parser.add_argument("--train", default="{}", help="TrainConfig overrides as JSON")
    parser.add_argument("--work", default=str(ROOT / ".state" / "bench-video"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "video_tier.json"))
    parser.add_argument("--image", default=str(ROOT / "docs" / "video_tier.png"))
    args = parser.parse_args()
    work = Path(args.work)
    bench = build_benchmark(scale=4)
    dataset_cfg = MAIN_JOB_DATASET.model_copy(update={"window": args.window})
    t0 = time.perf_counter()
    dataset = build_validated_dataset(TRAIN_SOURCES, work / f"dataset-w{args.window}", dataset_cfg)
    print(f"dataset {dataset.version}: {dataset.counts} ({time.perf_counter() - t0:.0f} s)")
    tiers = {
        "single": {"tier": args.trunk},
        "video": {"tier": "video", "trunk": args.trunk, "window": args.window},
    }
    rows, generators = [], {}
    for key, gen in tiers.items():
        if args.only and key != args.only:
            continue
        print(f"training {gen} for {args.minutes} min ...", flush=True)
        row, generator = run_tier(gen, args.minutes, dataset, work, bench, json.loads(args.train))
        rows.append(row)
        generators["single-frame" if key == "single" else "video tier"] = generator
        print(json.dumps(row), flush=True)
    if len(rows) == 2:
        for row in rows:
            row["gain_video_over_single"] = round(rows[1]["gain_video"] - rows[0]["gain_video"], 3)
            row["speed_vs_single"] = round(row["fps_720p"] / rows[0]["fps_720p"], 2)
    cols = ["tier", "train_minutes", "crops_per_s", *[f"gain_{t}" for t in bench.tracks],
            "gain_mean", "flicker_video", "fps_720p", "mlflow_run_id"]  # fmt: skip
    print(f"\nhost: {host()['cpu']} ({host()['kind']})")
    print_table(cols, rows)
    if len(rows) == 2:
        print(f"video tier over single-frame on the video track: "
              f"{rows[1]['gain_video_over_single']:+.3f} dB; speed {rows[1]['speed_vs_single']}x")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": host(),
        "benchmark_version": bench.version,
        "tracks": list(bench.tracks),
        "rows": rows,
    }
    out.write_text(json.dumps(payload, indent=2))
    if len(generators) == 2:
        fps = interleaved_fps(generators, bench.scale)
        ratio = fps["video tier"] / fps["single-frame"]
        print(f"720p frames/s, timed in turns: {fps} -> video tier at {ratio:.2f}x")
        payload["interleaved_fps_720p"] = fps
        payload["speed_ratio"] = round(ratio, 2)
        out.write_text(json.dumps(payload, indent=2))
        picture(generators, bench, Path(args.image))
        print(f"wrote {args.image}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
