"""Benchmark: the generator on each inference runtime and precision, 320x180 -> 1280x720.

For both tiers (fast: ``GeneratorConfig(tier="fast")``, five 3x3 convs 32 wide; quality:
``tier="quality"``, 8 residual blocks 32 wide) it times one frame per call on

* ``tf-f32``: :func:`videoboost.inference.engine.keras_predict`, the shipped path;
* ``tf-bf16``: the same weights rebuilt under Keras' ``mixed_bfloat16`` policy (oneDNN);
* ``ov-f32`` / ``ov-bf16``: OpenVINO, ``INFERENCE_PRECISION_HINT`` f32 / bf16 (bf16 only where
  the CPU reports it: OpenVINO picks bf16 by default on such CPUs);
* ``ov-int8``: OpenVINO after NNCF post-training quantisation of the trunk
  (:func:`videoboost.inference.runtimes.quantize_openvino`; the picture path stays float);
* ``ort-f32`` / ``ort-int8``: ONNX Runtime on the tf2onnx graph, and its static QDQ int8;
* ``cv2-bicubic``: ``cv2.resize`` bicubic, the floor every model is compared to;
* ``auto``: what ``videoboost upscale`` picks on this host (:func:`videoboost.evaluation.runtime_select.select`,
  measured afresh, not from the cache), built again and timed in the same rounds as the rest.

Calls are interleaved round by round so machine noise hits every runtime alike; the table
gives medians of wall time and of process CPU time (the steadier figure on a shared machine)
and ratios to ``tf-f32`` from the same run. Int8 calibration uses training frames (the sample
clip), never the held-out benchmark. Then each runtime upscales the held-out benchmark
(:func:`videoboost.evaluation.benchmark.evaluate`, throughput off) and the PSNR delta to ``tf-f32`` on the
same weights is reported: a runtime is adopted only at >= 1.3x and <= 0.05 dB loss.

Without ``--fast-model`` / ``--quality-model`` a tier gets fresh weights whose last
convolution is random (a fresh generator is exactly bicubic, which would hide precision loss).

    .venv/bin/python bench/runtime.py [--fast-model URI_OR_PATH] [--runs 9] [--frames 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

TIERS = {
    "fast": {"tier": "fast"},
    "quality": {"tier": "quality"},
}
LR_H, LR_W = 180, 320


def generator_for(tier: str, model: str | None):
    from models.networks import build_generator
    from videoboost.config import GeneratorConfig

    if model:
        from videoboost.mlops.tracking import load_generator

        return load_generator(model)[0], model
    import keras

    keras.utils.set_random_seed(0)
    gen = build_generator(GeneratorConfig(**TIERS[tier]))
    layer = gen.get_layer("to_subpixels")
    kernel, bias = layer.get_weights()
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(0, 0.02, kernel.shape).astype("float32"), bias])
    return gen, "fresh (random last conv)"


def bf16_twin(generator):
    from videoboost.evaluation.runtime_select import bf16_twin as twin

    return twin(generator)


def calibration_frames(scale: int, n: int = 8) -> list[np.ndarray]:
    """``n`` LR frames (1, 180, 320, 3) float32 from the training clip (not the benchmark)."""
    import cv2

    from videoboost.data.sources import SAMPLE_CLIP

    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames, i = [], 0
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % 7 == 0:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            hr = cv2.resize(rgb, (LR_W * scale, LR_H * scale), interpolation=cv2.INTER_AREA)
            lr = cv2.resize(hr, (LR_W, LR_H), interpolation=cv2.INTER_AREA)
            frames.append(lr[None].astype(np.float32))
        i += 1
    cap.release()
    return frames


def build_runtimes(
    generator, threads: int, calib: list[np.ndarray], only: set[str] | None = None
) -> tuple[dict, dict]:
    """name -> predict for every runtime that builds here; name -> why not, for the rest.

    ``only``: build just these (``tf-f32`` always: it is the reference).
    """
    from videoboost.inference import runtimes
    from videoboost.inference.engine import keras_predict

    built, skipped = {"tf-f32": keras_predict(generator)}, {}

    def attempt(name, make):
        if only and name not in only:
            return
        try:
            built[name] = make()
        except Exception as exc:
            skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"

    attempt("tf-bf16", lambda: keras_predict(bf16_twin(generator)))
    try:
        import openvino as ov

        if only and not {"ov-f32", "ov-bf16", "ov-int8"} & only:
            raise RuntimeError("not asked for")
        ov_model = runtimes.openvino_model(generator)
        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        attempt("ov-f32", lambda: runtimes.openvino_predict(ov_model, threads=threads))
        if only and "ov-bf16" not in only:
            pass
        elif "BF16" in caps:
            attempt(
                "ov-bf16",
                lambda: runtimes.openvino_predict(ov_model, precision="bf16", threads=threads),
            )
        else:
            skipped["ov-bf16"] = f"CPU capabilities {caps}: no BF16 (no avx512_bf16 / AMX)"

        def ov_int8():  # as `auto` makes it: the trunk in int8, the picture path in float
            q = runtimes.quantize_openvino(ov_model, calib)
            return runtimes.openvino_predict(q, threads=threads)

        attempt("ov-int8", ov_int8)
    except Exception as exc:
        skipped["ov-*"] = f"{type(exc).__name__}: {exc}"
    try:
        if only and not {"ort-f32", "ort-int8"} & only:
            raise RuntimeError("not asked for")
        onnx_bytes = runtimes.onnx_model(generator)
        attempt("ort-f32", lambda: runtimes.onnx_predict(onnx_bytes, threads=threads))
        attempt("ort-int8", lambda: ort_int8(onnx_bytes, calib, threads))
    except Exception as exc:
        skipped["ort-*"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return built, skipped


def ort_int8(onnx_bytes: bytes, calib: list[np.ndarray], threads: int):
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    from videoboost.inference import runtimes

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"lr": x} for x in calib])

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "f32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_bytes)
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return runtimes.onnx_predict(dst.read_bytes(), threads=threads)


def time_all(predicts: dict, runs: int, warmup: int) -> dict[str, dict]:
    """Interleaved rounds: median wall and process-CPU milliseconds per 320x180 frame."""
    import cv2

    lr = np.random.default_rng(0).uniform(0, 255, (1, LR_H, LR_W, 3)).astype(np.float32)
    calls = dict(predicts)
    lr8 = lr[0].astype(np.uint8)
    calls["cv2-bicubic"] = lambda _: cv2.resize(
        lr8, (LR_W * 4, LR_H * 4), interpolation=cv2.INTER_CUBIC
    )
    for fn in calls.values():
        for _ in range(warmup):
            fn(lr)
    wall: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(runs):
        for name, fn in calls.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn(lr)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    out = {}
    for name in calls:
        w, c = statistics.median(wall[name]) * 1e3, statistics.median(cpu[name]) * 1e3
        out[name] = {"wall_ms": round(w, 2), "cpu_ms": round(c, 2), "fps": round(1e3 / w, 2)}
    base = out["tf-f32"]
    for row in out.values():
        row["speedup_wall"] = round(base["wall_ms"] / row["wall_ms"], 2)
        row["speedup_cpu"] = round(base["cpu_ms"] / max(row["cpu_ms"], 1e-3), 2)
    return out


def psnr_all(predicts: dict, scale: int, frames: int) -> dict[str, dict]:
    from videoboost.config import BenchmarkConfig
    from videoboost.evaluation.benchmark import build_benchmark, evaluate

    cfg = BenchmarkConfig(frames=frames, segments=min(2, frames), fps_runs=0)
    bench = build_benchmark(scale, cfg=cfg)
    out = {}
    for name, fn in predicts.items():
        m = evaluate(fn, scale, bench, cfg).metrics
        out[name] = {"psnr": round(m["bench_psnr"], 4), "gain": round(m["bench_psnr_gain"], 4)}
    for row in out.values():
        row["delta_db"] = round(row["psnr"] - out["tf-f32"]["psnr"], 4)
    out["_benchmark"] = {"version": bench.version, "frames_per_video": frames}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast-model", help="trained fast generator (URI or path) for the PSNR")
    p.add_argument("--quality-model", help="trained quality generator (URI or path)")
    p.add_argument("--tiers", default="fast,quality")
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", help="comma-separated runtimes to run (tf-f32 always runs)")
    p.add_argument("--frames", type=int, default=6, help="benchmark frames per video (0: no PSNR)")
    p.add_argument("--no-auto", action="store_true", help="leave out the auto row")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "runtime.json"))
    args = p.parse_args()

    from videoboost.inference.engine import set_tf_threads

    set_tf_threads(args.threads)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "host": host_fields(),
        "threads": args.threads,
        "tiers": {},
    }
    for tier in args.tiers.split(","):
        gen, weights = generator_for(tier, getattr(args, f"{tier}_model"))
        only = set(args.only.split(",")) if args.only else None
        predicts, skipped = build_runtimes(gen, args.threads, calibration_frames(4), only)
        auto = None
        if not args.no_auto:
            auto = auto_choice(gen, args.threads)
            predicts[f"auto ({auto.name})"] = auto.predict
        timing = time_all(predicts, args.runs, args.warmup)
        quality = psnr_all(predicts, 4, args.frames) if args.frames else {}
        results["tiers"][tier] = {
            "config": TIERS[tier],
            "weights": weights,
            "timing": timing,
            "psnr": quality,
            "skipped": skipped,
            "auto": None
            if auto is None
            else {"runtime": auto.name, "precision": auto.precision, "table": auto.table},
        }
        print_table(tier, weights, timing, quality, skipped)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file():  # a run of one tier keeps the other tier's last results
        kept = json.loads(out.read_text()).get("tiers", {})
        results["tiers"] = {**kept, **results["tiers"]}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['date']}, {results['machine']}; written {args.out}")


def host_fields() -> dict:
    """The CPU behind every figure: model, the flags that matter, its kind, cores, load."""
    from videoboost.evaluation.runtime_select import detect_host

    host = detect_host()
    return {
        "cpu_model": host.cpu_model,
        "flags": list(host.flags),
        "kind": host.kind,
        "cores": host.cores,
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def machine() -> str:
    from videoboost.evaluation.runtime_select import detect_host

    host = detect_host()
    return f"{platform.machine()} {host.describe()}, load avg {os.getloadavg()[0]:.1f}"


def auto_choice(generator, threads: int):
    """``auto``'s pick at 320x180, measured now (a throwaway cache, so never a stale pick)."""
    import tempfile

    from videoboost.evaluation.runtime_select import describe_table, select

    with tempfile.TemporaryDirectory() as tmp:
        choice = select(generator, size=(LR_W, LR_H), threads=threads,
                        cache=Path(tmp) / "choices.json")  # fmt: skip
    print(choice.line())
    print("\n".join(describe_table(choice)))
    return choice


def print_table(tier, weights, timing, quality, skipped) -> None:
    print(f"\n{tier} tier, 320x180 -> 1280x720, weights: {weights}; {machine()}")
    print(
        "| runtime | wall ms | CPU ms | frames/s | x tf-f32 (wall) | x tf-f32 (CPU) | PSNR dB | delta dB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, t in timing.items():
        q = quality.get(name, {})
        psnr = f"{q['psnr']:.3f}" if q else "-"
        delta = f"{q['delta_db']:+.3f}" if q else "-"
        print(
            f"| {name} | {t['wall_ms']:.1f} | {t['cpu_ms']:.1f} | {t['fps']:.2f} | "
            f"{t['speedup_wall']:.2f} | {t['speedup_cpu']:.2f} | {psnr} | {delta} |"
        )
    for name, why in skipped.items():
        print(f"| {name} | not run: {why} |")


if __name__ == "__main__":
    main()
