"""Benchmark: the BentoML service on 320x180 -> 1280x720 frames (x4), against the bare model.

Measures, in one run on this machine:

* the bare model in this process (``keras_predict`` on one 320x180 frame), and the same plus
  what a request adds in process (PNG decode, engine, PNG encode);
* ``bentoml serve`` on 127.0.0.1 (one worker, from source, a port in 57000-57999), latency
  p50/p95/p99 and throughput at 1, 4 (and ``--clients``) concurrent clients, for ``/upscale``
  answering PNG (the default), JPEG (``format=jpeg``, quality 90) and stored PNG
  (``compression=0``), and for ``/upscale_frames`` without adaptive batching (the default) and
  with it (``max_batch_size`` 8, a second server);
* each row's ratios to the bare model of the same run: throughput / model frames/s, and
  p50 / model ms per frame.

Every request sends one PNG frame and gets one 1280x720 frame back. The clients run in this
process (threads), on the same cores as the server: on a 2-core machine they take a share.
Requests are bounded (``--requests`` per cell); p99 of a few dozen requests is close to the
maximum. Speed does not depend on the weights: without ``--model`` the fast tier
(``GeneratorConfig(tier="fast")``) is random-initialised.

Prints a table and writes ``bench/results/serve.json``.

    .venv/bin/python bench/serve.py [--model URI_OR_PATH] [--requests 40]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="videoboost-bench-serve-"))
# BentoML reads its home when first imported: a private store for this run.
os.environ.update(
    BENTOML_HOME=str(WORK / "bentoml"),
    VIDEOBOOST_HOME=os.environ.get("VIDEOBOOST_HOME") or str(ROOT / ".state"),
    BENTOML_DO_NOT_TRACK="true",
    DO_NOT_TRACK="true",
    MLFLOW_DISABLE_TELEMETRY="true",
    TF_CPP_MIN_LOG_LEVEL="2",
)

from videoboost.state import configure_environment  # noqa: E402

configure_environment()

import httpx  # noqa: E402
import numpy as np  # noqa: E402

LR_H, LR_W = 180, 320


def frame_png(seed: int) -> bytes:
    """A 320x180 frame of the bundled clip (textured, moving), PNG-encoded."""
    import cv2

    cap = cv2.VideoCapture(str(ROOT / "data" / "sample" / "bigbuckbunny.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 10 + seed)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        bgr = (np.random.default_rng(seed).random((720, 1280, 3)) * 255).astype(np.uint8)
    small = cv2.resize(bgr, (LR_W, LR_H), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".png", small)[1].tobytes()


def prepare_model(model: str | None) -> tuple[Path, str]:
    """A .keras file of the model to serve, and a description of it."""
    from videoboost.config import GeneratorConfig

    path = WORK / "generator.keras"
    if model:
        from videoboost.mlops.tracking import load_generator

        generator, info = load_generator(model)
        what = f"{info['uri']} (x{info['scale']})"
    else:
        from models.networks import build_generator

        generator = build_generator(GeneratorConfig(tier="fast", scale=4))
        what = "fast tier, x4, random init (speed does not depend on weights)"
    generator.save(path)
    return path, what


def bare_speed(path: Path, png: bytes, runs: int) -> dict:
    """Median ms per frame: the model alone, and decode + engine + encode in process."""
    from videoboost.config import UpscaleConfig
    from videoboost.evaluation.runtime_select import select
    from videoboost.inference.engine import Upscaler, set_tf_threads
    from videoboost.inference.images import encode_image, encode_png, read_image
    from videoboost.mlops.tracking import load_generator

    set_tf_threads(None)
    generator, info = load_generator(str(path))
    # The runtime the server picks (auto, measured afresh here) is the rate to compare with.
    choice = select(
        generator,
        size=(LR_W, LR_H),
        runtime=os.environ.get("VIDEOBOOST_SERVE_RUNTIME", "auto"),
        cache=WORK / "bare-choice.json",
    )
    predict = choice.predict
    lr = read_image(png)
    batch = lr[None].astype(np.float32)
    upscaler = Upscaler(predict, info["scale"], UpscaleConfig().engine())

    cpu: dict[str, float] = {}

    def timed(fn, name: str = "") -> float:
        for _ in range(3):
            fn()  # trace, warm caches
        samples, cpus = [], []
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            samples.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        cpu[name] = float(np.median(cpus) * 1000)
        return float(np.median(samples) * 1000)

    model_ms = timed(lambda: predict(batch), "model")
    request_ms = timed(lambda: encode_png(upscaler.upscale_image(read_image(png))))
    jpeg_ms = timed(lambda: encode_image(upscaler.upscale_image(read_image(png)), "jpeg"))
    batch4_ms = timed(lambda: predict(np.repeat(batch, 4, axis=0))) / 4
    return {
        "runtime": choice.name,
        "model_ms_per_frame": round(model_ms, 1),
        "model_fps": round(1000 / model_ms, 2),
        # CPU time of all the process's threads: steadier than wall time on a shared machine.
        "model_cpu_ms": round(cpu["model"], 1),
        "model_batch4_ms_per_frame": round(batch4_ms, 1),
        "in_process_request_ms": round(request_ms, 1),
        "in_process_request_fps": round(1000 / request_ms, 2),
        "in_process_jpeg_request_ms": round(jpeg_ms, 1),
    }


def free_port() -> int:
    """A free port in 57000-57999 (kept clear of the usual development ports)."""
    for port in np.random.default_rng().permutation(np.arange(57000, 58000)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", int(port)))
            except OSError:
                continue
            return int(port)
    raise SystemExit("no free port in 57000-57999")


class Server:
    """`bentoml serve service.service:VideoBoost` on 127.0.0.1, from source, own session."""

    def __init__(self, max_batch_size: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.where = ["--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ, "VIDEOBOOST_SERVE_MAX_BATCH_SIZE": str(max_batch_size)}
        self.log = (WORK / f"serve-{max_batch_size}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "service.service:VideoBoost", *self.where],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"bentoml serve exited; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    text = Path(self.log.name).read_text(errors="replace")
                    self.runtime = next(
                        (
                            ln.split("runtime: ", 1)[1]
                            for ln in text.splitlines()
                            if "runtime: " in ln
                        ),
                        "?",
                    )
                    print(f"server runtime: {self.runtime}", flush=True)
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"server not ready after 180 s; see {self.log.name}")
            time.sleep(0.5)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server's process tree (the CLI, circus, workers).

        Walked by parent pid: BentoML's process manager starts workers in sessions of their
        own, so a session-id match saw only the idle CLI and reported 0.
        """
        ticks: dict[int, int] = {}  # pid -> utime + stime
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            ticks[pid] = int(fields[11]) + int(fields[12])
            children.setdefault(int(fields[1]), []).append(pid)
        total, frontier = 0, [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            total += ticks.get(pid, 0)
            frontier.extend(children.get(pid, []))
        return total / os.sysconf("SC_CLK_TCK")

    def batch_stats(self) -> tuple[float, float]:
        """(sum, count) of BentoML's adaptive batch size histogram in /metrics."""
        total = count = 0.0
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            if line.startswith("bentoml_service_adaptive_batch_size_sum"):
                total += float(line.rsplit(" ", 1)[1])
            elif line.startswith("bentoml_service_adaptive_batch_size_count"):
                count += float(line.rsplit(" ", 1)[1])
        return total, count

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


def load(
    url: str,
    endpoint: str,
    pngs: list[bytes],
    clients: int,
    requests: int,
    fields: dict[str, str] | None = None,
) -> dict:
    """``requests`` POSTs from ``clients`` threads; latency percentiles and throughput."""
    field = "frames" if endpoint == "/upscale_frames" else "image"
    latencies: list[float] = []
    failures: dict[int, int] = {}
    lock = threading.Lock()
    next_request = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                with lock:
                    i = next(next_request, None)
                if i is None:
                    return
                files = {field: (f"f{i}.png", pngs[i % len(pngs)], "image/png")}
                t0 = time.perf_counter()
                r = http.post(endpoint, files=files, data=fields or {})
                dt = time.perf_counter() - t0
                ok = r.status_code == 200
                if ok and endpoint == "/upscale_frames":
                    ok = len(base64.b64decode(r.json()[0])) > 0
                with lock:
                    if ok:
                        latencies.append(dt)
                    else:
                        failures[r.status_code] = failures.get(r.status_code, 0) + 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    pct = (lambda q: round(float(np.percentile(ms, q)), 1)) if len(ms) else (lambda q: None)
    return {
        "clients": clients,
        "requests": requests,
        "ok": len(latencies),
        "failed": failures,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "throughput_fps": round(len(latencies) / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="URI or .keras path (default: random init)")
    parser.add_argument("--requests", type=int, default=40, help="requests per cell")
    parser.add_argument("--bare-runs", type=int, default=15)
    parser.add_argument("--clients", default="1,4", help="concurrent clients per cell")
    parser.add_argument(
        "--quick", action="store_true", help="one server: PNG and JPEG, batching off, short warm-up"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve.json"))
    args = parser.parse_args()

    from videoboost.mlops.serving import import_model

    path, what = prepare_model(args.model)
    pngs = [frame_png(seed) for seed in range(8)]
    print(f"model: {what}", flush=True)
    bare = bare_speed(path, pngs[0], args.bare_runs)
    print(f"bare: {json.dumps(bare)}", flush=True)
    tag = import_model(str(path)).tag

    rows = []
    concurrency = [int(c) for c in args.clients.split(",")]
    jpeg, stored = {"format": "jpeg", "quality": "90"}, {"compression": "0"}
    modes = [("/upscale", 1, "/upscale, PNG (default)", None),
             ("/upscale", 1, "/upscale, JPEG q90", jpeg),
             ("/upscale", 1, "/upscale, PNG level 0", stored),
             ("/upscale_frames", 1, "/upscale_frames, batching off (default)", None),
             ("/upscale_frames", 1, "/upscale_frames, batching off, JPEG q90", jpeg),
             ("/upscale_frames", 8, "/upscale_frames, batching on (max 8)", None)]  # fmt: skip
    if args.quick:  # for a loaded machine: the default answer, the cheap one, one server
        modes = [m for m in modes if m[1] == 1 and m[3] is not stored]
    warm = 8 if args.quick else 24
    server: Server | None = None
    server_batch = 0
    server_runtime = "?"
    try:
        for endpoint, max_batch, label, fields in modes:
            if server is None or server_batch != max_batch:
                if server is not None:
                    server.stop()
                server, server_batch = Server(max_batch), max_batch
                server_runtime = server.runtime
            # Warm-up; BentoML's batching dispatcher also fits its latency model on the first
            # ~20 requests (holding some back on purpose), which is not what we measure.
            load(server.url, endpoint, pngs, 4, warm, fields)
            for clients in concurrency:
                row = {"mode": label, "endpoint": endpoint, "max_batch_size": max_batch,
                       "runtime": server.runtime.split()[0]}  # fmt: skip
                total0, count0 = server.batch_stats()
                cpu0 = server.cpu_seconds()
                row.update(load(server.url, endpoint, pngs, clients, args.requests, fields))
                cpu_ms = (server.cpu_seconds() - cpu0) / max(1, row["ok"]) * 1000
                row["server_cpu_ms"] = round(cpu_ms, 1)
                row["cpu_over_model"] = round(cpu_ms / bare["model_cpu_ms"], 2)
                if row["p50_ms"] is not None:
                    row["fps_over_model"] = round(row["throughput_fps"] / bare["model_fps"], 2)
                    row["p50_over_model"] = round(row["p50_ms"] / bare["model_ms_per_frame"], 2)
                total1, count1 = server.batch_stats()
                if count1 > count0:  # frames per model call, this cell only
                    row["mean_batch"] = round((total1 - total0) / (count1 - count0), 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if server is not None:
            server.stop()

    cols = [
        "mode",
        "clients",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "throughput_fps",
        "fps_over_model",
        "p50_over_model",
        "server_cpu_ms",
        "cpu_over_model",
        "mean_batch",
        "failed",
    ]
    print(f"\nbare model in process: {bare['model_ms_per_frame']} ms/frame "
          f"({bare['model_fps']} fps); batch of 4: {bare['model_batch4_ms_per_frame']} ms/frame; "
          f"PNG decode + engine + PNG encode: {bare['in_process_request_ms']} ms "
          f"({bare['in_process_request_fps']} fps); the same with JPEG q90: "
          f"{bare['in_process_jpeg_request_ms']} ms")  # fmt: skip
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [r.get(c, "-") for c in cols]
        print("| " + " | ".join(str(c) if c != {} else "0" for c in cells) + " |")
    from videoboost.evaluation.runtime_select import detect_host

    host = detect_host()
    print(f"\nhost: {host.describe()}; bare runtime {bare['runtime']}, server: {server_runtime}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()} {host.describe()}, clients on the same cores",
                "host": {
                    "cpu_model": host.cpu_model,
                    "flags": list(host.flags),
                    "kind": host.kind,
                    "cores": host.cores,
                },
                "server_runtime": server_runtime,
                "model": what,
                "bento_model": str(tag),
                "frame": f"{LR_W}x{LR_H} -> {LR_W * 4}x{LR_H * 4} PNG",
                "bare": bare,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
