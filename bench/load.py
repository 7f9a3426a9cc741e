"""Load benchmark: many concurrent image requests and queued video jobs against one server.

Runs ``--requests`` POSTs to ``/upscale`` from ``--clients`` concurrent clients (threads) and,
at the same time, submits ``--videos`` video tasks to ``/upscale_video`` and waits for them;
everything is bounded by ``--max-seconds`` (after that no new request starts and unfinished
work counts as not done), so the run always stops by itself. While it runs, the RSS of the
server's process tree (``bentoml serve`` and its worker) is sampled with psutil.

Reports errors (any non-200, connection error, wrong output size, failed or unfinished video),
the status codes seen, latency p50/p99/max, throughput, and RSS at the start, peak and end plus
its slope over the second half of the run (a leak climbs; a healthy server levels off). The
server runs from source on 127.0.0.1 with ``VIDEOBOOST_API_TOKEN`` set (a random token, sent by
every client), serving the fast tier (random weights unless ``--model``: speed does not depend
on them) on 320x180 frames of the bundled clip (1280x720 out).

:func:`run_load` is the shared part: ``tests/service/test_load.py`` runs the same code, shorter, against
a served bento. Prints a table and writes ``bench/results/load.json``.

    .venv/bin/python bench/load.py [--requests 500] [--clients 16] [--videos 20]
        [--video-frames 24] [--max-seconds 900] [--model URI_OR_PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
POLL_S = 1.0  # video status polling interval: 20 pollers must not become the load


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, without decoding it; None if not a PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def tree_rss(pid: int) -> int:
    """Bytes resident in a process and its descendants (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


class RssSampler(threading.Thread):
    """Samples :func:`tree_rss` of ``pid`` every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (seconds since start, bytes)
        self._stop_event = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self._t0, tree_rss(self.pid)))
            if self._stop_event.wait(self.interval):
                self.samples.append((time.monotonic() - self._t0, tree_rss(self.pid)))
                return

    def stop(self) -> dict:
        self._stop_event.set()
        self.join()
        return rss_summary(self.samples)


def rss_summary(samples: Sequence[tuple[float, int]]) -> dict:
    """Start/peak/end RSS (MB), peak of each half, and the slope (MB/min) over the second half."""
    if not samples:
        return {}
    t = np.array([s[0] for s in samples])
    mb = np.array([s[1] for s in samples]) / 2**20
    half = t >= t[-1] / 2
    second_t, second_mb = t[half], mb[half]
    slope = (
        float(np.polyfit(second_t / 60, second_mb, 1)[0])
        if len(second_t) >= 3 and np.ptp(second_t) > 0
        else None
    )
    return {
        "samples": len(samples),
        "start_mb": round(float(mb[0]), 1),
        "peak_mb": round(float(mb.max()), 1),
        "end_mb": round(float(mb[-1]), 1),
        "peak_first_half_mb": round(float(mb[~half].max()), 1) if (~half).any() else None,
        "peak_second_half_mb": round(float(second_mb.max()), 1),
        "slope_second_half_mb_per_min": round(slope, 1) if slope is not None else None,
    }


def _percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def run_load(
    url: str,
    images: Sequence[bytes],
    *,
    requests: int,
    clients: int,
    videos: int = 0,
    video: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_seconds: float = 600,
    server_pid: int | None = None,
    expect_size: tuple[int, int] | None = None,
    expect_frames: int | None = None,
) -> dict:
    """Image requests and video tasks at once against ``url``; a summary dict.

    Args:
        url: the server, e.g. ``http://127.0.0.1:3000``.
        images: PNG payloads for ``/upscale``, used round-robin.
        requests: how many ``/upscale`` requests in all; clients: how many at once.
        videos: how many ``/upscale_video`` tasks to submit at the start (all concurrently).
        video: the MP4 payload of each task.
        headers: sent with every request (e.g. the ``Authorization`` header).
        max_seconds: after this no new request starts, pending requests time out and
            unfinished tasks count as errors.
        server_pid: sample this process tree's RSS during the run.
        expect_size: (width, height) every returned PNG must have.
        expect_frames: the frame count every finished video must report.

    ``errors`` counts every request or task that did not give a correct result, including
    ones never sent because time ran out; ``status`` counts HTTP codes (``"exc:Name"`` for a
    request that got no response).
    """
    deadline = time.monotonic() + max_seconds
    lock = threading.Lock()
    next_index = iter(range(requests))
    latencies: list[float] = []
    status: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    video_s: list[float] = []

    def left() -> float:
        return deadline - time.monotonic()

    def record(code: str, problem: str | None, seconds: float | None = None) -> None:
        with lock:
            status[code] += 1
            if problem:
                problems[problem] += 1
            elif seconds is not None:
                latencies.append(seconds)

    def image_client() -> None:
        with httpx.Client(base_url=url, headers=headers or {}) as http:
            while left() > 0:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                files = {"image": (f"f{i}.png", images[i % len(images)], "image/png")}
                t0 = time.perf_counter()
                try:
                    r = http.post("/upscale", files=files, timeout=max(left(), 0.1))
                except httpx.HTTPError as exc:
                    record(f"exc:{type(exc).__name__}", f"image {type(exc).__name__}")
                    continue
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    record(str(r.status_code), f"image HTTP {r.status_code}: {r.text[:200]}")
                elif expect_size is not None and png_size(r.content) != tuple(expect_size):
                    record("200", f"image size {png_size(r.content)} != {tuple(expect_size)}")
                else:
                    record("200", None, dt)

    def video_job(k: int) -> None:
        t0 = time.perf_counter()
        with httpx.Client(base_url=url, headers=headers or {}) as http:
            try:
                r = http.post(
                    "/upscale_video/submit",
                    files={"video": (f"v{k}.mp4", video, "video/mp4")},
                    timeout=max(left(), 0.1),
                )
                if r.status_code != 200:
                    record(str(r.status_code), f"video submit HTTP {r.status_code}: {r.text[:200]}")
                    return
                task = {"task_id": r.json()["task_id"]}
                while True:
                    r = http.get("/upscale_video/status", params=task, timeout=max(left(), 0.1))
                    if r.status_code != 200:
                        record(str(r.status_code), f"video status HTTP {r.status_code}")
                        return
                    state = r.json()["status"]
                    if state not in ("pending", "in_progress"):  # queued or running
                        break
                    if left() <= 0:
                        record("timeout", "video unfinished at the time limit")
                        return
                    time.sleep(min(POLL_S, max(left(), 0)))
                r = http.get("/upscale_video/get", params=task, timeout=max(left(), 0.1) + 30)
            except httpx.HTTPError as exc:
                record(f"exc:{type(exc).__name__}", f"video {type(exc).__name__}")
                return
            frames = r.headers.get("x-videoboost-frames")
            if state != "completed" or r.status_code != 200:
                body = r.text[:200] if r.status_code != 200 else "(no error)"
                record(str(r.status_code), f"video {state}, HTTP {r.status_code}: {body}")
            elif r.content[4:8] != b"ftyp":
                record("200", "video result is not an MP4")
            elif expect_frames is not None and frames != str(expect_frames):
                record("200", f"video has {frames} frames, expected {expect_frames}")
            else:
                record("200", None)
                with lock:
                    video_s.append(time.perf_counter() - t0)

    sampler = RssSampler(server_pid) if server_pid else None
    if sampler:
        sampler.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=video_job, args=(k,)) for k in range(videos)]
    threads += [threading.Thread(target=image_client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rss = sampler.stop() if sampler else {}

    not_sent = sum(1 for _ in next_index)  # left in the iterator when time ran out
    if not_sent:
        problems["image not sent: time limit"] += not_sent
    return {
        "requests": requests,
        "clients": clients,
        "ok": len(latencies),
        **_percentiles(latencies),
        "throughput_rps": round(len(latencies) / wall, 2),
        "videos": videos,
        "videos_ok": len(video_s),
        "video_p50_s": round(float(np.median(video_s)), 1) if video_s else None,
        "video_max_s": round(max(video_s), 1) if video_s else None,
        "errors": sum(problems.values()),
        "server_errors": sum(n for code, n in status.items() if code.startswith("5")),
        "status": dict(sorted(status.items())),
        "problems": dict(problems.most_common()),
        "stopped_by_time_limit": left() <= 0,
        "wall_s": round(wall, 1),
        "rss": rss,
    }


# --------------------------------------------------------------------------- the benchmark


def make_video(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """An H.264 clip of the bundled footage at ``size`` (w, h), ``frames`` long, no audio."""
    import av
    import cv2

    w, h = size
    cap = cv2.VideoCapture(str(ROOT / "data" / "sample" / "bigbuckbunny.mp4"))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            ok, bgr = cap.read()
            if not ok:
                raise SystemExit("cannot read data/sample/bigbuckbunny.mp4")
            rgb = cv2.cvtColor(
                cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
            )
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    cap.release()
    return path


def print_table(result: dict) -> None:
    rss = result["rss"].get
    lat = f"{result['p50_ms']} / {result['p99_ms']} / {result['max_ms']}"
    rows = [
        ("image requests (ok / sent)", f"{result['ok']} / {result['requests']}"),
        ("concurrent clients", result["clients"]),
        ("video tasks (ok / submitted)", f"{result['videos_ok']} / {result['videos']}"),
        ("errors", result["errors"]),
        ("5xx responses", result["server_errors"]),
        ("status codes", result["status"]),
        ("latency p50 / p99 / max (ms)", lat),
        ("throughput (requests/s)", result["throughput_rps"]),
        ("video task p50 / max (s)", f"{result['video_p50_s']} / {result['video_max_s']}"),
        ("wall time (s)", result["wall_s"]),
        (
            "server RSS start / peak / end (MB)",
            f"{rss('start_mb')} / {rss('peak_mb')} / {rss('end_mb')}",
        ),
        (
            "RSS peak 1st half / 2nd half (MB)",
            f"{rss('peak_first_half_mb')} / {rss('peak_second_half_mb')}",
        ),
        ("RSS slope, 2nd half (MB/min)", rss("slope_second_half_mb_per_min")),
    ]
    print("\n| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    if result["problems"]:
        print("\nproblems:", json.dumps(result["problems"], indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--video-frames", type=int, default=24)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--model", default=None, help="URI or .keras path (default: random init)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"))
    args = parser.parse_args()

    os.environ["VIDEOBOOST_API_TOKEN"] = token = secrets.token_urlsafe(32)
    sys.path.insert(0, str(ROOT))
    # bench/serve.py sets up a private BentoML home when imported and has the model, frame
    # and server helpers this benchmark shares.
    from bench import serve as common
    from videoboost.mlops.serving import import_model

    path, what = common.prepare_model(args.model)
    tag = import_model(str(path)).tag
    pngs = [common.frame_png(seed) for seed in range(8)]
    clip = make_video(common.WORK / "clip.mp4", args.video_frames, (common.LR_W, common.LR_H))
    print(f"model: {what}; {args.requests} requests at {args.clients} clients, "
          f"{args.videos} videos of {args.video_frames} frames", flush=True)  # fmt: skip

    server = common.Server(max_batch_size=8)  # the default ServeConfig
    try:
        auth = {"Authorization": f"Bearer {token}"}
        # Warm-up: the first requests trace the model at this frame size.
        warm = run_load(server.url, pngs, requests=8, clients=2, headers=auth, max_seconds=120)
        if warm["errors"]:
            raise SystemExit(f"warm-up failed: {warm['problems']}")
        result = run_load(
            server.url,
            pngs,
            requests=args.requests,
            clients=args.clients,
            videos=args.videos,
            video=clip.read_bytes(),
            headers=auth,
            max_seconds=args.max_seconds,
            server_pid=server.proc.pid,
            expect_size=(common.LR_W * 4, common.LR_H * 4),
            expect_frames=args.video_frames,
        )
    finally:
        server.stop()
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores, clients on the same cores",
                "model": what,
                "bento_model": str(tag),
                "frame": f"{common.LR_W}x{common.LR_H} -> {common.LR_W * 4}x{common.LR_H * 4} PNG",
                "video": f"{args.video_frames} frames {common.LR_W}x{common.LR_H}, H.264",
                "result": result,
            },
            indent=2,
        )
    )
    tmp.replace(out)
    print(f"\nwrote {out}")
    if result["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
