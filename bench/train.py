"""Benchmark: train each tier for a fixed wall-clock budget on the bundled training clip, score
on held-out footage (the evaluation benchmark: bikes.mp4 + stills, never trained on).

Prints a table and writes ``bench/results/train.json``. Not a test: numbers depend on the
machine; quote medians and ratios, and the date.

    .venv/bin/python bench/train.py --fast-minutes 10 --quality-minutes 25
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

from videoboost.config import (  # noqa: E402
    BenchmarkConfig,
    DatasetConfig,
    GeneratorConfig,
    SamplingConfig,
    TrainConfig,
)
from videoboost.dataset import build_dataset  # noqa: E402
from videoboost.evaluate import build_benchmark, evaluate_keras  # noqa: E402
from videoboost.train import train  # noqa: E402

TRAIN_CLIP = ROOT / "data" / "sample" / "bigbuckbunny.mp4"


class WallBudget(keras.callbacks.Callback):
    """Stops training once the wall-clock budget is spent (checked every step)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.start = time.perf_counter()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


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


def run_tier(tier: str, minutes: float, dataset: Path, work: Path, bench) -> dict:
    gen = GeneratorConfig(tier=tier, filters=64 if tier == "fast" else 32, blocks=8)
    # Steps are generous: the wall budget stops training. The LR schedule assumes the
    # step count the budget allows (measured speed), so cosine decay ends near the budget.
    steps_per_sec = {"fast": 30.0, "quality": 5.0}[tier]
    epochs = 20
    steps = max(10, int(minutes * 60 * steps_per_sec / epochs))
    cfg = TrainConfig(
        generator=gen,
        steps_per_epoch=steps,
        pretrain_epochs=epochs,
        early_stopping_patience=epochs,
        val_frames=4,
        sample_every=epochs,
    )
    budget = WallBudget(minutes * 60)
    t0 = time.perf_counter()
    result = train(dataset, cfg, work / tier, callbacks=[budget], progress=False)
    train_s = time.perf_counter() - t0
    report = evaluate_keras(result.generator, bench, BenchmarkConfig(fps_runs=7), model=tier)
    m = report.metrics
    return {
        "bicubic_fps_720p": round(bicubic_fps(), 1),
        "tier": tier,
        "params": int(result.generator.count_params()),
        "train_minutes": round(train_s / 60, 2),
        "steps": budget.steps,
        "steps_per_s": round(budget.steps / train_s, 2),
        "val_psnr": round(result.final["val_psnr"], 3),
        "val_psnr_bicubic": round(result.final["val_psnr_bicubic"], 3),
        "val_psnr_gain": round(result.final["val_psnr_gain"], 3),
        "bench_psnr": round(m["bench_psnr"], 3),
        "bench_psnr_bicubic": round(m["bench_psnr_bicubic"], 3),
        "bench_psnr_gain": round(m["bench_psnr_gain"], 3),
        "bench_ssim": round(m["bench_ssim"], 4),
        "bench_flicker": round(m["bench_flicker"], 3),
        "bench_flicker_bicubic": round(m["bench_flicker_bicubic"], 3),
        "fps_720p": round(m.get("bench_fps_720p", float("nan")), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-minutes", type=float, default=10.0)
    parser.add_argument("--quality-minutes", type=float, default=25.0)
    parser.add_argument("--tiers", nargs="+", default=["fast", "quality"])
    parser.add_argument("--work", default=str(ROOT / ".state" / "bench-train"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train.json"))
    args = parser.parse_args()

    work = Path(args.work)
    cfg = DatasetConfig(sampling=SamplingConfig(dedupe_threshold=0.5), patches_per_frame=16)
    info = build_dataset([TRAIN_CLIP], work / "dataset", cfg, progress=False)
    bench = build_benchmark(scale=4)
    rows = []
    for tier in args.tiers:
        minutes = args.fast_minutes if tier == "fast" else args.quality_minutes
        print(f"training {tier} for {minutes} min ...", flush=True)
        rows.append(run_tier(tier, minutes, info.path, work, bench))
        print(json.dumps(rows[-1]), flush=True)

    cols = ["tier", "params", "train_minutes", "steps_per_s", "val_psnr_gain", "bench_psnr",
            "bench_psnr_bicubic", "bench_psnr_gain", "bench_flicker", "bench_flicker_bicubic",
            "fps_720p", "bicubic_fps_720p"]  # fmt: skip
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.processor() or platform.machine()}, 2 cores",
                "dataset_version": info.version,
                "benchmark_version": bench.version,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
