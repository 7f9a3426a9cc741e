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

``--profile N`` instead runs everything in one process with the runtime ``auto`` picks (as
``videoboost upscale``, from its cache): the per-stage table (decode, the conversions to the
model's layout, tiling, the model, float to uint8, the colour conversion for the encoder,
encode, the writing; wall and CPU ms a frame and threads) of the RGB path (uint8 RGB, swscale
in the writer) and the fast path (the model's float frames to yuv420p in one step) over N
frames, each path's PSNR-Y against the model's own frames, and each path end to end over
``--frames`` frames against the model alone timed before and after it. Writes
``bench/results/video_stages.json``.

    .venv/bin/python bench/video.py [--model URI_OR_PATH] [--frames 64] [--preset superfast]
    .venv/bin/python bench/video.py --profile 48 --frames 400
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


def _threads_now() -> int:
    """Threads of this process now (Linux /proc): a stage's own threads are the difference."""
    return len(os.listdir("/proc/self/task"))


class _Stage:
    """Wall and CPU time of one stage summed over calls, and the threads it started."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.threads = "1"

    def __call__(self, fn, *a, **kw):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a, **kw)
        self.wall += time.perf_counter() - t0
        self.cpu += time.process_time() - c0
        return out


def stage_table(src: Path, n: int, predict, runtime: str, tf_threads: int, preset: str, crf: int,
                planar: bool, work: Path) -> dict[str, dict]:  # fmt: skip
    """Each stage of one path over the first ``n`` frames of ``src``, one after another in this
    thread (no overlap: every stage's CPU time is its own), writing a real MP4.

    ``planar=False`` is the RGB path (uint8 RGB frames, swscale to yuv420p in the writer);
    ``planar=True`` the fast path (the model's float frames to yuv420p in one step,
    :func:`videoboost.video.colour.rgb_to_yuv420`, encoded without a conversion).
    """
    import av
    import cv2

    from videoboost.config import UpscaleConfig
    from videoboost.inference.engine import _to_uint8_once, prepare_image
    from videoboost.video.colour import rgb_to_yuv420
    from videoboost.video.write import VideoWriter

    cfg = UpscaleConfig(preset=preset, crf=crf)
    names = ["decode", "to model layout", "tiling and stitching", "model", "float to uint8",
             "colour conversion for the encoder", "encode", "writing"]  # fmt: skip
    st = {k: _Stage() for k in names}
    st["to model layout"].threads = "1 (swscale, numpy)"
    st["tiling and stitching"].threads = "none: 320x180 is below the 512 px tile"
    st["model"].threads = (
        f"{tf_threads} (TF intra-op)"
        if runtime.startswith("tf")
        else f"{os.cpu_count()} (OpenVINO)"
    )
    st["float to uint8"].threads = "1 (numpy)" if not planar else "fused into the next row"
    st["colour conversion for the encoder"].threads = (
        "1 (swscale)" if not planar else f"{cv2.getNumThreads()} (OpenCV pool)"
    )
    dst = work / f"stages_{'planar' if planar else 'rgb'}.mp4"
    writer = VideoWriter(dst, Fraction(25), crf=cfg.crf, preset=cfg.preset)
    encode_threads = None
    # VideoWriter.write = colour conversion + encode + mux; split it by timing its parts.
    orig_mux, orig_encode = writer._mux, None

    def timed_mux(packets):
        st["writing"](orig_mux, packets)

    writer._mux = timed_mux
    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        frames_iter = c.decode(stream)
        decoded = [st["decode"](next, frames_iter) for _ in range(n)]
        st["decode"].threads = str(max(1, stream.codec_context.thread_count))
    for i in range(0, n, cfg.batch):
        chunk = decoded[i : i + cfg.batch]
        batch = st["to model layout"](
            lambda ch=chunk: np.stack(
                [prepare_image(f.to_ndarray(format="rgb24")) for f in ch]
            ).astype(np.float32)
        )
        sr = st["model"](lambda b=batch: np.asarray(predict(b), dtype=np.float32))
        for one in sr:
            if planar:
                frame = st["colour conversion for the encoder"](rgb_to_yuv420, one, overwrite=True)
                avf = st["colour conversion for the encoder"](frame.to_frame)
            else:
                rgb = st["float to uint8"](_to_uint8_once, one)
                avf = st["colour conversion for the encoder"](writer_frame_rgb, rgb)
            if writer._stream is None:  # the encoder opens on the first frame: count its threads
                before = _threads_now()
                writer.write(frame if planar else rgb)  # opens the stream, not timed
                encode_threads = _threads_now() - before
                continue
            if orig_encode is None:
                orig_encode = writer._stream.encode
            avf.pts = writer.frames_written
            avf.time_base = Fraction(1, 25)
            packets = st["encode"](orig_encode, avf)
            writer._mux(packets)
            writer.frames_written += 1
    st["encode"](lambda: writer._mux(orig_encode(None)))
    writer._closed = True  # what close() does after the flush above:
    st["writing"](writer._out.commit)  # the moov atom at the front (faststart), fsync, rename
    st["encode"].threads = f"{encode_threads} (x264 {preset}, threads auto)"
    st["writing"].threads = "1 (MP4 mux)"

    def per_frame(k: str, seconds: float) -> float:
        # The first frame opened the encoder untimed: it is not in encode and writing.
        return round(seconds / (n - 1 if k in ("encode", "writing") else n) * 1000, 2)

    return {
        k: {"wall_ms": per_frame(k, v.wall), "cpu_ms": per_frame(k, v.cpu), "threads": v.threads}
        for k, v in st.items()
    }


def writer_frame_rgb(rgb: np.ndarray):
    """The RGB path's conversion in :meth:`VideoWriter.write`: swscale to BT.709 yuv420p."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(
        format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
    )


def psnr_y(path: Path, model_frames: list[np.ndarray]) -> float:
    """Mean PSNR on BT.709 luma of the encoded ``path`` against the model's own float frames
    (clipped to [0, 255], luma computed in float: the reference rounds nowhere)."""
    import av
    import cv2

    from videoboost.video.colour import _Y_ROW

    out = []
    with av.open(str(path)) as c:
        for f, ref in zip(c.decode(video=0), model_frames, strict=False):
            h, w = ref.shape[:2]
            got = f.to_ndarray(format="yuv420p")[:h, :w].astype(np.float64)
            want = cv2.transform(np.clip(ref, 0, 255), _Y_ROW).astype(np.float64)
            mse = float(np.mean((got - want) ** 2))
            out.append(10 * np.log10(255**2 / max(mse, 1e-10)))
    return float(np.mean(out))


def profile(args: argparse.Namespace) -> None:
    """The per-stage table of both paths over the same clip, the PSNR-Y of each path's
    encoded output against the model's own frames, and each path end to end against the
    model alone, all in this one process."""
    from videoboost.config import GeneratorConfig, UpscaleConfig
    from videoboost.evaluation.runtime_select import detect_host, select
    from videoboost.inference.engine import Upscaler, set_tf_threads
    from videoboost.video.pipeline import upscale_video

    tf_threads = os.cpu_count() or 1
    set_tf_threads(tf_threads)
    n = args.profile
    work = Path(tempfile.mkdtemp(prefix="videoboost-profile-"))
    src = make_source(work / "src.mp4", max(n, args.frames))
    if args.model:
        from videoboost.mlops.tracking import load_generator

        generator, info = load_generator(args.model)
        scale = info["scale"]
    else:
        import keras

        from models.networks import build_generator

        keras.utils.set_random_seed(0)  # the same weights every run: the cached choice holds
        generator, scale = build_generator(GeneratorConfig(tier="fast", scale=4)), 4
    # As `videoboost upscale` chooses: from the cache of this host, or measured and cached.
    choice = select(generator, size=(LR_W, LR_H), runtime=args.runtime)
    print(choice.line(), flush=True)
    if args.select_only:
        return
    predict = choice.predict
    cfg = UpscaleConfig(preset=args.preset, crf=args.crf)
    upscaler = Upscaler(predict, scale, cfg.engine())
    warm = np.zeros((cfg.batch, LR_H, LR_W, 3), np.float32)
    for _ in range(2):
        predict(warm)

    tables = {}
    for planar in (False, True):
        tables["fast" if planar else "rgb"] = stage_table(
            src, n, predict, choice.name, tf_threads, args.preset, args.crf, planar, work
        )
    # Quality: the model's own float frames for the first n frames, against each path's file.
    from videoboost.video.read import decode_frames

    lrs = [rgb for _, rgb, _ in decode_frames(src)][:n]
    model_frames = []
    for i in range(0, n, cfg.batch):
        model_frames.extend(np.asarray(predict(np.stack(lrs[i : i + cfg.batch]).astype(
            np.float32)), dtype=np.float32))  # fmt: skip
    quality = {k: round(psnr_y(work / f"stages_{'planar' if k == 'fast' else 'rgb'}.mp4",
                               model_frames), 2) for k in tables}  # fmt: skip

    # End to end, each path over the long clip, the model alone timed before and after each.
    batch = np.stack(lrs[: cfg.batch]).astype(np.float32)

    def model_alone(rounds: int = 8) -> tuple[float, float]:
        walls, cpus = [], []
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            predict(batch)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        return cfg.batch / float(np.median(walls)), float(np.median(cpus)) / cfg.batch * 1000

    e2e = {}
    for name in ("rgb", "fast"):
        planar = name == "fast"
        m0 = model_alone()
        t0, c0 = time.perf_counter(), time.process_time()
        result = upscale_video(
            src,
            work / f"e2e_{name}.mp4",
            lambda frames, p=planar: upscaler.upscale_frames(frames, planar=p),
            segment_frames=cfg.segment_frames,
            crf=cfg.crf,
            preset=cfg.preset,
            job_key=f"bench-{time.time()}",
        )
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        m1 = model_alone()
        model_fps = float(np.median([m0[0], m1[0]]))
        e2e[name] = {
            "frames": result.frames,
            "e2e_fps": round(result.frames / seconds, 2),
            "model_fps": round(model_fps, 2),
            "model_fps_before_after": [round(m0[0], 2), round(m1[0], 2)],
            "e2e_over_model": round(result.frames / seconds / model_fps, 3),
            "e2e_cpu_ms": round(cpu / result.frames * 1000, 1),
            "model_cpu_ms": round((m0[1] + m1[1]) / 2, 1),
        }
        print(json.dumps({name: e2e[name]}), flush=True)

    host = detect_host()
    load = os.getloadavg()
    print(f"\nhost: {host.describe()}; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    print(f"clip: {LR_W}x{LR_H} -> {LR_W * scale}x{LR_H * scale}, runtime {choice.name}, "
          f"x264 {args.preset} CRF {args.crf}, batch {cfg.batch}; stages over {n} frames, "
          f"end to end over {result.frames}")  # fmt: skip
    print(
        "\n| stage | RGB path wall / CPU ms a frame | fast path wall / CPU ms a frame "
        "| threads (RGB path; fast path) |\n|---|---|---|---|"
    )
    for k in tables["rgb"]:
        a, b = tables["rgb"][k], tables["fast"][k]
        threads = (
            a["threads"] if a["threads"] == b["threads"] else f"{a['threads']}; {b['threads']}"
        )
        print(f"| {k} | {a['wall_ms']} / {a['cpu_ms']} | {b['wall_ms']} / {b['cpu_ms']} | "
              f"{threads} |")  # fmt: skip
    totals = {k: round(sum(r["cpu_ms"] for s, r in t.items() if s != "model"), 2)
              for k, t in tables.items()}  # fmt: skip
    print(f"| everything but the model (CPU) | {totals['rgb']} | {totals['fast']} | |")
    print(f"| PSNR-Y of the file vs the model's frames | {quality['rgb']} dB | "
          f"{quality['fast']} dB | |")  # fmt: skip
    print(
        "\n| path | frames | e2e fps | model alone fps (before, after) | e2e / model | "
        "CPU-ms a frame e2e / model |\n|---|---|---|---|---|---|"
    )
    for k, r in e2e.items():
        print(f"| {k} | {r['frames']} | {r['e2e_fps']} | {r['model_fps']} "
              f"({', '.join(map(str, r['model_fps_before_after']))}) | "
              f"**{r['e2e_over_model']}** | {r['e2e_cpu_ms']} / {r['model_cpu_ms']} |")  # fmt: skip
    out = Path(args.out).with_name("video_stages.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "host": host.describe(), "load_average": load,
                               "runtime": choice.name, "stage_frames": n,
                               "stages": tables, "psnr_y": quality, "e2e": e2e},
                              indent=2))  # fmt: skip
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
    parser.add_argument("--select-only", action="store_true",
                        help="with --profile: only choose (and cache) the runtime, then stop")  # fmt: skip
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="per-stage table of the RGB and the fast path over N frames, "
                        "PSNR-Y, and both end to end over --frames frames, in one process")  # fmt: skip
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
