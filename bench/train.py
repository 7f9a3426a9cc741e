"""Benchmark: train each tier for a wall-clock budget on the bundled training corpus, score on
the held-out benchmark (bikes.mp4 + stills, never trained on).

Each run keeps weight snapshots at fixed minutes (the cosine schedule still spans the whole
budget), scored afterwards, for the gain-versus-minutes plot. Prints a table, writes
``bench/results/train.json`` and ``bench/results/train_gain.png``. Not a test: numbers depend
on the machine; quote medians and ratios, and the date.

    .venv/bin/python bench/train.py --fast-minutes 10 --quality-minutes 30
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from videoboost.state import configure_environment  # noqa: E402

configure_environment()

import keras  # noqa: E402

from flows.main_job import MAIN_JOB_DATASET  # noqa: E402
from videoboost.config import BenchmarkConfig, GeneratorConfig, TrainConfig  # noqa: E402
from videoboost.data.sources import TRAIN_SOURCES  # noqa: E402
from videoboost.evaluation.benchmark import build_benchmark, evaluate_keras  # noqa: E402
from videoboost.mlops.validation import build_validated_dataset  # noqa: E402
from videoboost.training.train import train  # noqa: E402


class Snapshots(keras.callbacks.Callback):
    """Saves the generator's weights when training time passes each mark (minutes)."""

    def __init__(self, marks: list[float], folder: Path):
        super().__init__()
        self.marks, self.folder = sorted(marks), folder
        self.saved: list[tuple[float, Path]] = []
        self.start = None

    def on_train_batch_end(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()
        minutes = (time.perf_counter() - self.start) / 60
        while self.marks and minutes >= self.marks[0]:
            mark = self.marks.pop(0)
            path = self.folder / f"at_{mark:g}min.weights.h5"
            self.model.generator.save_weights(path)
            self.saved.append((mark, path))


def bicubic_fps(runs: int = 51) -> float:
    """cv2.resize bicubic 320x180 -> 1280x720 in the same process: the speed floor to compare."""
    import cv2
    import numpy as np

    lr = np.random.default_rng(0).integers(0, 256, (180, 320, 3), dtype=np.uint8)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        cv2.resize(lr, (1280, 720), interpolation=cv2.INTER_CUBIC)
        times.append(time.perf_counter() - t0)
    return 1.0 / sorted(times)[len(times) // 2]


TIERS = {
    "fast": GeneratorConfig(tier="fast"),
    "quality": GeneratorConfig(tier="quality"),
}


def run_tier(
    tier: str, minutes: float, dataset: Path, work: Path, bench, overrides: dict | None = None
) -> dict:
    cfg = TrainConfig(
        **(overrides or {}),
        generator=TIERS[tier],
        minutes=minutes,
        pretrain_epochs=0,
        steps_per_epoch=500 if tier == "fast" else 150,
        early_stopping_patience=1000,  # the clock decides
        val_frames=6,
        sample_every=1000,
    )
    folder = work / tier
    folder.mkdir(parents=True, exist_ok=True)
    marks = [m for m in (1, 2, 3, 5, 10, 15, 20, 30) if m < minutes]
    snaps = Snapshots(marks, folder)
    t0 = time.perf_counter()
    result = train(dataset, cfg, folder, callbacks=[snaps], progress=True)
    train_s = time.perf_counter() - t0
    report = evaluate_keras(result.generator, bench, BenchmarkConfig(fps_runs=7), model=tier)
    m = report.metrics
    curve = [(0.0, 0.0)]
    gen = result.generator
    final_weights = gen.get_weights()
    for mark, path in snaps.saved:
        gen.load_weights(path)
        score = evaluate_keras(gen, bench, BenchmarkConfig(fps_runs=0)).metrics
        curve.append((mark, round(score["bench_psnr_gain"], 3)))
    gen.set_weights(final_weights)
    curve.append((round(result.elapsed_s / 60, 2), round(m["bench_psnr_gain"], 3)))
    row = {
        "bicubic_fps_720p": round(bicubic_fps(), 1),
        "tier": tier,
        "params": int(gen.count_params()),
        "train_minutes": round(result.elapsed_s / 60, 2),
        "wall_minutes": round(train_s / 60, 2),
        "steps": result.steps,
        "steps_per_s": round(result.steps / max(result.elapsed_s, 1e-9), 2),
        "val_psnr_gain": round(result.final["val_psnr_gain"], 3),
        "bench_psnr": round(m["bench_psnr"], 3),
        "bench_psnr_bicubic": round(m["bench_psnr_bicubic"], 3),
        "bench_psnr_gain": round(m["bench_psnr_gain"], 3),
        "bench_ssim": round(m["bench_ssim"], 4),
        "bench_flicker": round(m["bench_flicker"], 3),
        "bench_flicker_bicubic": round(m["bench_flicker_bicubic"], 3),
        "fps_720p": round(m.get("bench_fps_720p", float("nan")), 2),
        "per_source_gain": {
            r["name"]: round(r["psnr"] - r["psnr_bicubic"], 3) for r in report.sources
        },
        "gain_curve": curve,
    }
    row["mlflow_run_id"] = log_run(row, cfg, gen, folder)
    return row


def log_run(row: dict, cfg: TrainConfig, generator, folder: Path) -> str:
    """One MLflow run per tier in the ``videoboost-bench`` experiment (same store as the rest):
    config, scores, the gain curve (step = training seconds) and the generator, so a table row
    can be traced to its run and its model opened in the MLflow UI."""
    import mlflow

    from videoboost.config import flatten
    from videoboost.state import artifact_location, tracking_uri

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    name = "videoboost-bench"
    if mlflow.get_experiment_by_name(name) is None:
        # The same artifact location as the project's experiment: without it a SQLite store
        # puts the artifacts in ./mlruns of whatever folder the script ran from.
        mlflow.create_experiment(
            name,
            artifact_location=artifact_location(uri),
            tags={"mlflow.experimentKind": "custom_model_development"},
        )
    mlflow.set_experiment(name)
    run_name = f"bench-{row['tier']}-{row['train_minutes']:g}min-{time.strftime('%m%d-%H%M')}"
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(flatten(cfg))
        mlflow.log_params({"params": row["params"], "steps": row["steps"]})
        mlflow.log_metrics(
            {k: v for k, v in row.items() if isinstance(v, float | int) and k != "params"}
        )
        mlflow.log_metrics({f"gain_{k}": v for k, v in row["per_source_gain"].items()})
        for minute, gain in row["gain_curve"]:
            mlflow.log_metric("bench_psnr_gain_curve", gain, step=round(minute * 60))
        path = folder / f"generator_{row['tier']}.keras"
        generator.save(path)
        mlflow.log_artifact(str(path))
        return run.info.run_id


def print_table(cols: list[str], rows: list[dict]) -> None:
    """``rows`` as a Markdown table of ``cols`` (what the README quotes)."""
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for r in rows:
        xs, ys = zip(*r["gain_curve"], strict=True)
        ax.plot(xs, ys, marker="o", label=f"{r['tier']} ({r['params']:,} params)")
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel("held-out PSNR gain over bicubic (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("VideoBoost x4: gain on footage it never saw")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-minutes", type=float, default=10.0)
    parser.add_argument("--quality-minutes", type=float, default=30.0)
    parser.add_argument("--tiers", nargs="+", default=["fast", "quality"])
    parser.add_argument("--work", default=str(ROOT / ".state" / "bench-train"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train.json"))
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--crop", type=int, default=None, help="LR crop side")
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()
    overrides = {
        key: value
        for key, value in (
            ("learning_rate", args.lr),
            ("crop", args.crop),
            ("batch_size", args.batch_size),
        )
        if value is not None
    }

    work = Path(args.work)
    info = build_validated_dataset(
        TRAIN_SOURCES, work / "dataset", MAIN_JOB_DATASET, progress=False
    )
    bench = build_benchmark(scale=4)
    rows = []
    for tier in args.tiers:
        minutes = args.fast_minutes if tier == "fast" else args.quality_minutes
        print(f"training {tier} for {minutes} min ...", flush=True)
        rows.append(run_tier(tier, minutes, info.path, work, bench, overrides))
        print(json.dumps(rows[-1]), flush=True)

    cols = ["tier", "params", "train_minutes", "steps_per_s", "val_psnr_gain", "bench_psnr",
            "bench_psnr_bicubic", "bench_psnr_gain", "bench_flicker", "bench_flicker_bicubic",
            "fps_720p", "bicubic_fps_720p", "mlflow_run_id"]  # fmt: skip
    print()
    print_table(cols, rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.processor() or platform.machine()}, 2 cores",
                "dataset_version": info.version,
                "benchmark_version": bench.version,
                "overrides": overrides,
                "rows": rows,
            },
            indent=2,
        )
    )
    png = out.with_name("train_gain.png")
    plot(rows, png)
    print(f"\nwrote {out} and {png}")


if __name__ == "__main__":
    main()
