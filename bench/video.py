"""Benchmark: end-to-end video upscaling (decode + model + encode) against the model alone, with
the stages overlapped (the default) and one after another (``queue_frames=0``), and peak memory
for a short clip and one 10x longer (memory must not grow with length).

The sources are the bundled clip scaled to 320x180 (looped for the long one), with an AAC
track; the output is 1280x720 H.264 through :func:`videoboost.video.pipeline.upscale_video`, exactly as
``videoboost upscale`` runs it (segments of 64 frames, x264 ``--preset``, audio copied). Each
clip runs in a fresh process so its peak RSS (``ru_maxrss``) is its own; the process reports
the peak before the job (TensorFlow, model, warm-up) and after it, and the resident memory
after each 64-frame segment (first and largest). Speed does not depend on
the weights: without ``--model`` the fast tier (``GeneratorConfig(tier="fast")``)
is random-initialised.

Prints a table and writes ``bench/results/video.json``.

    .venv/bin/python bench/video.py [--model URI_OR_PATH] [--frames 64] [--preset superfast]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

LR_W, LR_H = 320, 180
SAMPLE = ROOT / "data" / "sample" / "bigbuckbunny.mp4"


def make_source(path: Path, frames: int) -> Path:
    """``frames`` frames of the sample clip at 320x180 (looped), 25 fps, H.264 + AAC."""
    import av
    import cv2

    with av.open(str(SAMPLE)) as src:
        pictures = [
            cv2.resize(f.to_ndarray(format="rgb24"), (LR_W, LR_H), interpolation=cv2.INTER_AREA)
            for f in src.decode(video=0)
        ]
    rate = Fraction(25)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = LR_W, LR_H, "yuv420p"
        video.options = {"preset": "fast", "crf": "18"}
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pictures[i % len(pictures)], format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = int(48000 * frames / rate)
        t = np.arange(samples) / 48000
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, samples, 1024):
            chunk = np.ascontiguousarray(np.stack([wave[k : k + 1024]] * 2))
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, k
            out.mux(sound.encode(af))
        out.mux(sound.encode(None))
    return path


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mb() -> float:
    """Resident memory now (Linux /proc), sampled after each finished segment."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child_bicubic(args: argparse.Namespace) -> None:
    """The pipeline alone: OpenCV bicubic x4 in the model's place (no TensorFlow), so the row
    shows what decoding, colour conversion, encoding and the queues cost per frame."""
    import cv2

    from videoboost.config import UpscaleConfig
    from videoboost.video.pipeline import QUEUE_FRAMES, upscale_video

    cfg = UpscaleConfig(preset=args.preset, crf=args.crf)
    size = (LR_W * 4, LR_H * 4)
    lr = np.random.default_rng(0).integers(0, 255, (LR_H, LR_W, 3), np.uint8)
    c0 = time.process_time()
    for _ in range(20):
        cv2.resize(lr, size, interpolation=cv2.INTER_CUBIC)
    model_cpu_ms = (time.process_time() - c0) / 20 * 1000
    src = Path(args.child)
    dst = src.with_name(src.stem + f"_bicubic_{args.stages}.mp4")
    t0, c0 = time.perf_counter(), time.process_time()
    result = upscale_video(
        src,
        dst,
        lambda frames: (cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames),
        segment_frames=cfg.segment_frames,
        crf=cfg.crf,
        preset=cfg.preset,
        job_key=f"bench-{time.time()}",
        queue_frames=QUEUE_FRAMES if args.stages == "overlapped" else 0,
    )
    seconds = time.perf_counter() - t0
    e2e_cpu_ms = (time.process_time() - c0) / result.frames * 1000
    print(
        json.dumps(
            {
                "runtime": "cv2-bicubic",
                "frames": result.frames,
                "seconds": round(seconds, 2),
                "e2e_fps": round(result.frames / seconds, 2),
                "model_cpu_ms": round(model_cpu_ms, 1),
                "e2e_cpu_ms": round(e2e_cpu_ms, 1),
                "peak_before_mb": 0,
                "peak_after_mb": round(peak_mb()),
                "rss_first_segment_mb": 0,
                "rss_max_segment_mb": 0,
                "output": f"{result.width}x{result.height}, {result.frames} frames",
            }
        )
    )


def child(args: argparse.Namespace) -> None:
    """One clip in this (fresh) process: model-only fps, the job, peak memory."""
    from videoboost.config import GeneratorConfig, UpscaleConfig
    from videoboost.inference.engine import Upscaler, keras_predict, set_tf_threads
    from videoboost.video.pipeline import QUEUE_FRAMES, probe, upscale_video

    if args.model == "bicubic":
        return child_bicubic(args)
    set_tf_threads(None)
    if args.model:
        from videoboost.mlops.tracking import load_generator

        generator, info = load_generator(args.model)
        scale = info["scale"]
    else:
        from models.networks import build_generator

        generator = build_generator(GeneratorConfig(tier="fast", scale=4))
        scale = 4
    cfg = UpscaleConfig(preset=args.preset, crf=args.crf)
    if args.runtime == "tf-f32":
        predict, runtime = keras_predict(generator), "tf-f32"
    else:  # what `videoboost upscale` would run here (measured afresh: a throwaway cache)
        from videoboost.evaluation.runtime_select import select

        with tempfile.TemporaryDirectory() as tmp:
            choice = select(generator, size=(LR_W, LR_H), runtime=args.runtime,
                            cache=Path(tmp) / "c.json")  # fmt: skip
        predict, runtime = choice.predict, choice.name
    upscaler = Upscaler(predict, scale, cfg.engine())
    batch = np.random.default_rng(0).uniform(0, 255, (cfg.batch, LR_H, LR_W, 3))
    batch = batch.astype(np.float32)
    for _ in range(2):
        predict(batch)  # trace
    runs, cpu = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        predict(batch)
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    model_fps = cfg.batch / float(np.median(runs))
    # CPU time (all threads of the process) per frame: on a shared machine wall time follows
    # the other jobs' load, CPU time much less.
    model_cpu_ms = float(np.median(cpu)) / cfg.batch * 1000
    before = peak_mb()

    src = Path(args.child)
    dst = src.with_name(src.stem + "_x4.mp4")
    rss_after_segment: list[int] = []
    t0, c0 = time.perf_counter(), time.process_time()
    result = upscale_video(
        src,
        dst,
        lambda frames: upscaler.upscale_frames(frames),
        segment_frames=cfg.segment_frames,
        crf=cfg.crf,
        preset=cfg.preset,
        job_key=f"bench-{time.time()}",
        progress=lambda done, total: rss_after_segment.append(round(rss_mb())),
        queue_frames=QUEUE_FRAMES if args.stages == "overlapped" else 0,
    )
    seconds = time.perf_counter() - t0
    e2e_cpu_ms = (time.process_time() - c0) / result.frames * 1000
    out = probe(dst)
    print(
        json.dumps(
            {
                "runtime": runtime,
                "frames": result.frames,
                "seconds": round(seconds, 2),
                "e2e_fps": round(result.frames / seconds, 2),
                "model_fps": round(model_fps, 2),
                "e2e_over_model": round(result.frames / seconds / model_fps, 2),
                "model_cpu_ms": round(model_cpu_ms, 1),
                "e2e_cpu_ms": round(e2e_cpu_ms, 1),
                "model_cpu_share": round(model_cpu_ms / e2e_cpu_ms, 2),
                "peak_before_mb": round(before),
                "peak_after_mb": round(peak_mb()),
                "rss_first_segment_mb": rss_after_segment[0],
                "rss_last_segment_mb": rss_after_segment[-1],
                "rss_max_segment_mb": max(rss_after_segment),
                "output": f"{out.width}x{out.height} {out.codec} {out.fps} fps, "
                f"{out.frame_count} frames, audio {','.join(out.audio_codecs) or 'none'}",
            }
        )
    )


def profile(args: argparse.Namespace) -> None:
    """CPU-ms a frame of each stage in isolation (this process, all its threads), and what
    the x264 preset and thread count cost against the quality they keep."""
    import io

    import av
    from av.video.reformatter import ColorRange, Colorspace

    from models.networks import build_generator
    from videoboost.config import GeneratorConfig
    from videoboost.evaluation.runtime_select import detect_host, select
    from videoboost.inference.engine import set_tf_threads

    set_tf_threads(None)
    n = args.profile
    src = make_source(Path(tempfile.mkdtemp(prefix="videoboost-profile-")) / "src.mp4", n)

    def cpu_ms(fn) -> tuple[float, object]:
        c0 = time.process_time()
        out = fn()
        return (time.process_time() - c0) / n * 1000, out

    rows: dict[str, float] = {}

    def decode():
        with av.open(str(src)) as c:
            return [f for _, f in zip(range(n), c.decode(video=0), strict=False)]

    rows["decode (H.264 320x180)"], frames = cpu_ms(decode)
    rows["to_ndarray rgb24 (swscale yuv420p->rgb)"], lrs = cpu_ms(
        lambda: [f.to_ndarray(format="rgb24") for f in frames]
    )
    generator = build_generator(GeneratorConfig(tier="fast", scale=4))
    with tempfile.TemporaryDirectory() as tmp:
        choice = select(generator, size=(LR_W, LR_H), runtime=args.runtime,
                        cache=Path(tmp) / "c.json")  # fmt: skip

    def model():
        outs = []
        for i in range(0, n, 4):
            batch = np.stack(lrs[i : i + 4]).astype(np.float32)
            outs.extend(np.rint(np.clip(choice.predict(batch), 0, 255)).astype(np.uint8))
        return outs

    model()  # warm-up
    rows[f"model ({choice.name}, batch 4) + uint8"], srs = cpu_ms(model)

    def to_yuv():
        return [
            av.VideoFrame.from_ndarray(sr, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
            )
            for sr in srs
        ]

    rows["from_ndarray + rgb->yuv420p BT.709 (swscale, 720p)"], yuvs = cpu_ms(to_yuv)

    def encode(preset: str, threads: str | None) -> tuple[bytes, float]:
        buf = io.BytesIO()
        opts = {"crf": str(args.crf), "preset": preset, **({"threads": threads} if threads else {})}
        c0 = time.process_time()
        with av.open(buf, "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=25, options=opts)
            stream.width, stream.height, stream.pix_fmt = LR_W * 4, LR_H * 4, "yuv420p"
            for i, y in enumerate(yuvs):
                y.pts = i
                out.mux(stream.encode(y))
            out.mux(stream.encode(None))
        return buf.getvalue(), (time.process_time() - c0) / n * 1000

    h = LR_H * 4
    sources_y = [y.to_ndarray()[:h] for y in yuvs]

    def quality(data: bytes) -> float:
        """PSNR of the decoded luma against the luma given to x264 (no colour matrix between)."""
        with av.open(io.BytesIO(data)) as c:
            got = [f.to_ndarray()[:h] for f in c.decode(video=0)]
        mse = [
            np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(got, sources_y, strict=True)
        ]
        return float(np.mean([10 * np.log10(255**2 / max(m, 1e-10)) for m in mse]))

    encoders = []
    for preset, threads in [("ultrafast", None), ("superfast", None), ("superfast", "1"),
                            ("veryfast", None), ("medium", None)]:  # fmt: skip
        data, ms = encode(preset, threads)
        encoders.append({"preset": preset, "threads": threads or "auto", "cpu_ms": round(ms, 1),
                         "kbytes": round(len(data) / 1024), "psnr_y": round(quality(data), 2)})  # fmt: skip
    host = detect_host()
    print(f"host: {host.describe()}, load avg {os.getloadavg()[0]:.1f}; {n} frames")
    print("| stage | CPU-ms a frame |\n|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v:.1f} |")
    print(
        "| x264 preset (threads) | CPU-ms a frame | kB | PSNR-Y dB vs its input |\n|---|---|---|---|"
    )
    for e in encoders:
        print(f"| {e['preset']} ({e['threads']}) | {e['cpu_ms']} | {e['kbytes']} | {e['psnr_y']} |")
    out = Path(args.out).with_name("video_stages.json")
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "host": host.describe(), "frames": n,
                               "stages_cpu_ms": {k: round(v, 1) for k, v in rows.items()},
                               "x264": encoders}, indent=2))  # fmt: skip
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=None,
        help="URI or .keras path (default: random init); 'bicubic': OpenCV in its place, no TF",
    )
    parser.add_argument("--frames", type=int, default=64, help="short clip length (long = 10x)")
    parser.add_argument("--preset", default="superfast", help="x264 preset of the output")
    parser.add_argument("--crf", type=int, default=18, help="x264 CRF of the output")
    parser.add_argument(
        "--stages", default="both", choices=["both", "overlapped", "sequential"], help="which paths"
    )
    parser.add_argument(
        "--runtime", default="auto", help="inference runtime (auto: as `videoboost upscale`)"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "video.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="only the per-stage CPU profile over N frames, and x264 presets")  # fmt: skip
    args = parser.parse_args()
    if args.profile:
        profile(args)
        return
    if args.child:
        child(args)
        return

    from videoboost.evaluation.runtime_select import detect_host

    host = detect_host()
    work = Path(tempfile.mkdtemp(prefix="videoboost-bench-video-"))
    rows = []
    stages = ["sequential", "overlapped"] if args.stages == "both" else [args.stages]
    for name, frames in (("short", args.frames), ("long (10x)", args.frames * 10)):
        src = make_source(work / f"{frames}.mp4", frames)
        for mode in stages:  # the same source, one after the other: same load, same clip
            cmd = [sys.executable, __file__, "--child", str(src), "--preset", args.preset,
                   "--crf", str(args.crf), "--stages", mode, "--runtime", args.runtime]  # fmt: skip
            if args.model:
                cmd += ["--model", args.model]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
            if out.returncode != 0:
                raise SystemExit(f"{name} clip failed:\n{out.stderr[-3000:]}")
            row = {"clip": name, "stages": mode, **json.loads(out.stdout.strip().splitlines()[-1])}
            row["job_mb"] = row["peak_after_mb"] - row["peak_before_mb"]
            if mode == "overlapped" and len(stages) == 2:
                row["over_sequential"] = round(row["e2e_fps"] / rows[-1]["e2e_fps"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)

    cols = ["clip", "stages", "runtime", "frames", "seconds", "e2e_fps", "model_fps", "e2e_over_model",
            "over_sequential", "model_cpu_ms", "e2e_cpu_ms", "model_cpu_share", "peak_before_mb", "peak_after_mb", "job_mb",
            "rss_first_segment_mb", "rss_max_segment_mb"]  # fmt: skip
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    print(f"\noutput: {rows[-1]['output']}")
    print(f"host: {host.describe()}, load avg {os.getloadavg()[0]:.1f}")
    result = Path(args.out)
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()} {host.describe()}",
                "host": {
                    "cpu_model": host.cpu_model,
                    "flags": list(host.flags),
                    "kind": host.kind,
                    "cores": host.cores,
                },
                "model": args.model or "fast tier, x4, random init",
                "video": f"{LR_W}x{LR_H} 25 fps H.264+AAC -> {LR_W * 4}x{LR_H * 4}, "
                f"x264 preset {args.preset}, crf {args.crf}, segments of 64 frames",
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {result}")


if __name__ == "__main__":
    main()
