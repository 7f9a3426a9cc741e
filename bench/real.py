"""Benchmark: a `clean`-trained and a `real`-trained generator, same tier, same minutes, same
corpus (make run's dataset settings), scored on every track of the held-out benchmark.

Prints a table (one row per model, one column per track, each the gain over bicubic of the same
input), the training throughput of each profile (crops per second) and writes
``bench/results/real.json`` plus a picture: LR | bicubic | clean-trained | real-trained | HR on a
coded frame of the benchmark. Each model is an MLflow run in the ``videoboost-bench`` experiment.
Not a test: the numbers depend on the machine (its CPU is in the JSON).

    .venv/bin/python bench/real.py --minutes 5.5
    .venv/bin/python bench/real.py --minutes 10 --profiles real --real '{"clean_share": 0.3}'
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
from videoboost.config import (  # noqa: E402
    BenchmarkConfig,
    DegradeConfig,
    RealDegradeConfig,
    TrainConfig,
)
from videoboost.data.sources import TRAIN_SOURCES  # noqa: E402
from videoboost.evaluation.benchmark import build_benchmark, evaluate_keras, track_key  # noqa: E402
from videoboost.mlops.validation import build_validated_dataset  # noqa: E402
from videoboost.training.train import train  # noqa: E402


def run_profile(profile: str, real: RealDegradeConfig, tier: str, minutes: float, work: Path,
                bench, train_overrides: dict) -> tuple[dict, object]:  # fmt: skip
    dataset_cfg = MAIN_JOB_DATASET.model_copy(
        update={"degrade": DegradeConfig(profile=profile, real=real)}
    )
    t0 = time.perf_counter()
    info = build_validated_dataset(
        TRAIN_SOURCES, work / f"dataset-{profile}", dataset_cfg, progress=False
    )
    build_s = time.perf_counter() - t0
    data = MAIN_JOB_TRAIN.model_dump()
    data.update(generator={"tier": tier}, minutes=minutes, sample_every=1000)
    for key, value in train_overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    cfg = TrainConfig.model_validate(data)
    folder = work / f"{profile}-{tier}"
    folder.mkdir(parents=True, exist_ok=True)
    result = train(info.path, cfg, folder, progress=True)
    report = evaluate_keras(result.generator, bench, BenchmarkConfig(fps_runs=0), model=profile)
    m = report.metrics
    row = {
        "tier": f"{tier} ({profile})",
        "generator": cfg.generator.model_dump(),
        "profile": profile,
        "params": int(result.generator.count_params()),
        "dataset_version": info.version,
        "dataset_build_s": round(build_s, 1),
        "train_minutes": round(result.elapsed_s / 60, 2),
        "steps": result.steps,
        "crops_per_s": round(result.steps * cfg.batch_size / max(result.elapsed_s, 1e-9), 1),
        "ended_by": result.ended_by,
        **{f"gain_{t}": round(m[track_key("bench_psnr_gain", t)], 3) for t in bench.tracks},
        "gain_mean": round(m["bench_psnr_gain_mean"], 3),
        **{f"flicker_{t}": round(m[track_key("bench_flicker", t)], 3) for t in bench.tracks},
        "per_source_gain": {
            r["name"]: round(r["psnr"] - r["psnr_bicubic"], 3) for r in report.sources
        },
        "gain_curve": [],
        "bench_psnr_gain": round(m["bench_psnr_gain"], 3),
        "real": real.model_dump() if profile == "real" else None,
    }
    row["mlflow_run_id"] = log_run(row, cfg, result.generator, folder)
    return row, report


def picture(reports: dict, path: Path) -> None:
    """LR | bicubic | clean-trained | real-trained | HR on the coded sample frame."""
    import cv2

    from videoboost.evaluation.compare import detail_corners, side_by_side

    report = next(iter(reports.values()))
    first = report.sample
    crop = 96
    hr_size = first["hr"].shape[1::-1]
    nearest = cv2.resize(first["lr"], hr_size, interpolation=cv2.INTER_NEAREST)
    panels = [(f"LR ({report.sample_track})", nearest), ("bicubic", first["bicubic"])]
    panels += [(f"{name}-trained", r.sample["sr"]) for name, r in reports.items()]
    panels.append(("HR", first["hr"]))
    img = side_by_side(panels, crop, corners=detail_corners(first["hr"], crop, 2), zoom=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[..., ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=MAIN_JOB_TRAIN.minutes)
    parser.add_argument("--tier", default="fast", choices=["fast", "quality"])
    parser.add_argument("--profiles", nargs="+", default=["clean", "real"])
    parser.add_argument("--real", default="{}", help="RealDegradeConfig overrides as JSON")
    parser.add_argument("--train", default="{}", help="TrainConfig overrides as JSON")
    parser.add_argument("--work", default=str(ROOT / ".state" / "bench-real"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "real.json"))
    parser.add_argument("--image", default=None, help="comparison PNG (default beside --out)")
    args = parser.parse_args()
    real = RealDegradeConfig(**json.loads(args.real))
    work = Path(args.work)
    bench = build_benchmark(scale=4)
    rows, reports = [], {}
    for profile in args.profiles:
        print(f"training {args.tier} on the {profile} profile for {args.minutes} min ...",
              flush=True)  # fmt: skip
        row, report = run_profile(
            profile, real, args.tier, args.minutes, work, bench, json.loads(args.train)
        )
        rows.append(row)
        reports[profile] = report
        print(json.dumps({k: v for k, v in row.items() if k != "real"}), flush=True)

    cols = ["tier", "train_minutes", "crops_per_s", *[f"gain_{t}" for t in bench.tracks],
            "gain_mean", "mlflow_run_id"]  # fmt: skip
    print(f"\nhost: {host()['cpu']} ({host()['kind']})")
    print_table(cols, rows)
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
    image = Path(args.image) if args.image else out.with_name("real_vs_clean.png")
    picture(reports, image)
    print(f"\nwrote {out} and {image}")


if __name__ == "__main__":
    main()
