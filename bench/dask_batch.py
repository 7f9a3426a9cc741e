"""Benchmark: the ``batch-upscale`` flow in threads of one process against Dask (2 workers).

Input: the bundled clip scaled to 320x180 (132 frames, AAC kept), re-encoded with a keyframe
every 33 frames so the Dask run cuts it into 4 parts; the output is 1280x720. The model is
the fast tier (filters 64), random-initialised: speed does not depend on the weights. Runs:
sequential (the default), Dask cold (a LocalCluster started for the run: worker processes
import TensorFlow and load the model), Dask warm (the same cluster again, by address).
Everything runs on a temporary Prefect server. Prints a table; writes bench/results/dask.json.

    .venv/bin/python bench/dask_batch.py [--workers 2] [--split 33]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def keyframed_copy(src: Path, dst: Path, gop: int) -> Path:
    """``src`` re-encoded with a keyframe every ``gop`` frames, audio copied."""
    import av

    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(dst), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"g": str(gop), "keyint_min": str(gop),
                                                        "sc_threshold": "0", "crf": "18"})  # fmt: skip
        h, w = frames[0].shape[:2]
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        with av.open(str(src)) as a:
            audio = a.streams.audio[0]
            sound = out.add_stream_from_template(audio)
            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                out.mux(v.encode(frame))
            out.mux(v.encode(None))
            for packet in a.demux(audio):
                if packet.dts is not None:
                    packet.stream = sound
                    out.mux(packet)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--split", type=int, default=33)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vb-bench-dask-"))
    os.environ["VIDEOBOOST_HOME"] = str(tmp / "state")
    from distributed import LocalCluster
    from prefect.testing.utilities import prefect_test_harness

    from flows.batch import batch_upscale
    from flows.main_job import make_lowres_clip
    from models.networks import build_generator
    from videoboost.config import DaskConfig, GeneratorConfig

    model = tmp / "fast.keras"
    build_generator(GeneratorConfig(tier="fast", scale=4)).save(model)
    lowres = make_lowres_clip(ROOT / "data/sample/bigbuckbunny.mp4", tmp / "lr.mp4", 4)
    clip = keyframed_copy(lowres, tmp / "in" / "bunny_320x180.mp4", args.split)
    rows = []
    with prefect_test_harness(server_startup_timeout=120):

        def run(name, **kw):
            started = time.monotonic()
            out = batch_upscale([str(clip)], out_dir=str(tmp / name), model=str(model), **kw)
            seconds = time.monotonic() - started
            rows.append({"run": name, "seconds": round(seconds, 1),
                         "parts": out["done"][0]["parts"]})  # fmt: skip
            print(f"{name:12s} {seconds:6.1f} s  parts {out['done'][0]['parts']}", flush=True)

        run("sequential")
        run("dask-cold", dask=DaskConfig(workers=args.workers, split_frames=args.split))
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1",
                          processes=True, dashboard_address=None) as cluster:  # fmt: skip
            cfg = DaskConfig(address=cluster.scheduler_address, split_frames=args.split)
            run("dask-first", dask=cfg)  # workers import TF and load the model
            run("dask-warm", dask=cfg)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    report = {"cpus": os.cpu_count(), "workers": args.workers, "frames": 132, "runs": rows}
    (results / "dask.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
