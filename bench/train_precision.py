"""Benchmark: training throughput in float32 against mixed bfloat16, and whether quality holds.

Each tier (fast 32x3, quality 32x8) trains twice from the same seed on the same crop stream,
once per ``TrainConfig.precision``, for the same epochs of fixed steps (batch 16, LR crop 32,
XLA on, as the base runs train). Crops/s = steps x batch / seconds of the training steps of an
epoch (validation excluded), median over the epochs after the first (XLA compile, warm-up).
Quality: validation PSNR gain of the best epoch and held-out benchmark gain (clean track), and
bf16 minus float32 in dB. On a CPU without avx512_bf16/AMX the bf16 rows still run, labelled
"emulated": their quality column holds, their speed is not what a bf16 host gets. Prints a
table, writes ``bench/results/train_precision.json``. Not a test: quote medians and ratios.

    .venv/bin/python bench/train_precision.py            # ~7 min on 2 cores
    .venv/bin/python bench/train_precision.py --smoke    # seconds, writes under /tmp only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SMOKE_HOME = Path("/tmp/videoboost-bench-precision-smoke")
if "--smoke" in sys.argv:  # before configure_environment makes its folders under the home
    os.environ["VIDEOBOOST_HOME"] = str(SMOKE_HOME)

from videoboost.state import configure_environment  # noqa: E402

configure_environment()

import keras  # noqa: E402

from bench.host import host  # noqa: E402
from flows.main_job import MAIN_JOB_DATASET  # noqa: E402
from videoboost.config import (  # noqa: E402
    BenchmarkConfig,
    DatasetConfig,
    GeneratorConfig,
    SamplingConfig,
    TrainConfig,
)
from videoboost.data.shards import load_info  # noqa: E402
from videoboost.data.sources import SAMPLE_CLIP, TRAIN_SOURCES  # noqa: E402
from videoboost.evaluation.benchmark import build_benchmark, evaluate_keras  # noqa: E402
from videoboost.inference.engine import set_tf_threads  # noqa: E402
from videoboost.mlops.validation import build_validated_dataset  # noqa: E402
from videoboost.training.train import train  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")


class EpochTimer(keras.callbacks.Callback):
    """Seconds from each epoch's start to its last training step (validation comes after)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.start = self.last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self.last - self.start)


def run(tier: str, precision: str, steps: int, args, dataset: Path, benchmark) -> dict:
    cfg = TrainConfig(
        generator=GeneratorConfig(tier=tier),
        precision=precision,
        batch_size=args.batch_size,
        crop=args.crop,
        threads=args.threads,
        seed=args.seed,
        steps_per_epoch=steps,
        pretrain_epochs=args.epochs,
        early_stopping_patience=1000,  # every run trains all its epochs
        deterministic=False,  # op determinism rules XLA out; the base runs train with XLA
        jit_compile=not args.no_xla,
        warmup_steps=min(100, steps * args.epochs // 5),
        val_frames=6,
        sample_every=1000,
    )
    timer = EpochTimer()
    t0 = time.perf_counter()
    result = train(dataset, cfg, Path(args.work) / f"{tier}-{precision}", callbacks=[timer],
                   progress=False)  # fmt: skip
    wall = time.perf_counter() - t0
    per_epoch = [steps * args.batch_size / s for s in timer.seconds]
    row = {
        "tier": tier,
        "precision": result.precision,
        "params": int(result.generator.count_params()),
        "steps": result.steps,
        "first_epoch_s": round(timer.seconds[0], 2),
        "crops_per_s_epochs": [round(c, 1) for c in per_epoch],
        "crops_per_s": round(statistics.median(per_epoch[1:] or per_epoch), 1),
        "wall_s": round(wall, 1),
        "val_psnr_gain": round(result.final["val_psnr_gain"], 3),
    }
    if benchmark is not None:
        bcfg = BenchmarkConfig(tracks=("clean",), fps_runs=0, threads=args.threads)
        metrics = evaluate_keras(result.generator, benchmark, bcfg, model=tier).metrics
        row["bench_psnr_gain"] = round(metrics["bench_psnr_gain"], 3)
    return row


def compare(rows: list[dict]) -> None:
    """Adds each bf16 row's speed ratio and gain differences against its tier's float32 row."""
    base = {r["tier"]: r for r in rows if r["precision"] == "float32"}
    for r in rows:
        f32 = base.get(r["tier"])
        if r["precision"] == "float32" or f32 is None:
            continue
        r["ratio"] = round(r["crops_per_s"] / f32["crops_per_s"], 2)
        r["val_delta_db"] = round(r["val_psnr_gain"] - f32["val_psnr_gain"], 3)
        if "bench_psnr_gain" in r:
            r["bench_delta_db"] = round(r["bench_psnr_gain"] - f32["bench_psnr_gain"], 3)


def print_table(rows: list[dict], cpu: str, emulated: bool) -> None:
    cols = ["tier", "precision", "crops/s (median)", "bf16/f32", "val gain", "Δ val",
            "held-out gain", "Δ held-out"]  # fmt: skip
    print(f"\nhost: {cpu}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        label = r["precision"] + (" (emulated)" if emulated and r["precision"] != "float32" else "")
        cells = [r["tier"], label, r["crops_per_s"], r.get("ratio", ""),
                 f"{r['val_psnr_gain']:+.3f}", _db(r.get("val_delta_db")),
                 _db(r.get("bench_psnr_gain")), _db(r.get("bench_delta_db"))]  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")


def _db(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", nargs="+", default=["fast", "quality"])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--epochs", type=int, default=4, help="the first one is not timed")
    parser.add_argument("--fast-steps", type=int, default=200, help="steps per epoch, fast")
    parser.add_argument("--quality-steps", type=int, default=80, help="steps per epoch, quality")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop", type=int, default=32, help="LR crop side")
    parser.add_argument("--threads", type=int, default=2, help="TF intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-xla", action="store_true", help="the plain graph instead of XLA")
    parser.add_argument("--no-bench", action="store_true", help="skip the held-out benchmark")
    parser.add_argument("--dataset", default=None, help="a built dataset folder (default: the "
                        "bundled corpus, built as bench/train.py builds it)")  # fmt: skip
    parser.add_argument("--work", default=str(ROOT / ".state" / "bench-train-precision"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_precision.json"))
    parser.add_argument("--smoke", action="store_true", help="2 tiny epochs, under /tmp only")
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.fast_steps, args.quality_steps = 2, 3, 2
        args.work, args.out = str(SMOKE_HOME / "work"), str(SMOKE_HOME / "train_precision.json")
    set_tf_threads(args.threads)  # only takes before TensorFlow's first op

    the_host = host()
    emulated = not any(f in the_host["flags"] for f in ("avx512_bf16", "amx_bf16"))
    cpu = f"{the_host['cpu']} ({the_host['kind']}), {the_host['cores']} cores"
    print(f"host: {cpu}" + (" -- no bf16 units: bf16 is emulated" if emulated else ""))
    if args.dataset:
        dataset, dataset_version = Path(args.dataset), load_info(args.dataset).version
    else:
        sources, dcfg, folder = TRAIN_SOURCES, MAIN_JOB_DATASET, ROOT / ".state" / "bench-train"
        if args.smoke:  # a few frames of one clip, through the same validated build
            sources, folder = (SAMPLE_CLIP,), SMOKE_HOME
            dcfg = DatasetConfig(sampling=SamplingConfig(every=20, max_frames=8), val_fraction=0.3)
        info = build_validated_dataset(sources, folder / "dataset", dcfg, progress=False)
        dataset, dataset_version = info.path, info.version
    benchmark = None
    if not args.no_bench:
        frames = {"frames": 2, "segments": 1} if args.smoke else {}
        benchmark = build_benchmark(4, cfg=BenchmarkConfig(tracks=("clean",), **frames))

    rows = []
    for tier in args.tiers:
        steps = args.fast_steps if tier == "fast" else args.quality_steps
        for precision in args.precisions:
            print(f"training {tier} in {precision}: {args.epochs} x {steps} steps ...", flush=True)
            rows.append(run(tier, precision, steps, args, dataset, benchmark))
            print(json.dumps(rows[-1]), flush=True)
    compare(rows)
    print_table(rows, cpu, emulated)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("epochs", "fast_steps", "quality_steps",
                "batch_size", "crop", "threads", "seed", "no_xla", "smoke")}  # fmt: skip
    payload = {
        "date": time.strftime("%Y-%m-%d"),
        "host": the_host,
        "bf16_emulated": emulated,
        "load_avg": os.getloadavg()[0],
        "settings": settings,
        "dataset": str(dataset),
        "dataset_version": dataset_version,
        "benchmark_version": benchmark.version if benchmark is not None else None,
        "rows": rows,
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
