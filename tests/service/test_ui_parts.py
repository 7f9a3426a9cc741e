"""The web page's parts that need no server: the video jobs' progress record and the
per-track gains the page shows (the page itself is driven in test_ui.py)."""

from __future__ import annotations

import math

from service.live import KEEP_TASKS, TaskProgress
from videoboost.mlops.serving import track_gains


def test_a_task_runs_then_finishes():
    tasks = TaskProgress()
    assert tasks.get("t1") is None
    tasks.start("t1", total=8)
    tasks.advance("t1", 3)
    assert tasks.get("t1") == {"state": "running", "frames": 3, "total": 8}
    tasks.finish("t1", ok=True)
    assert tasks.get("t1")["state"] == "done"
    tasks.start("t2", total=0)  # a container that does not say how many frames
    tasks.finish("t2", ok=False)
    assert tasks.get("t2") == {"state": "failed", "frames": 0, "total": 0}


def test_no_task_id_is_no_record_and_the_record_stays_bounded():
    tasks = TaskProgress()
    tasks.start(None, 5)
    tasks.advance(None, 1)
    tasks.finish(None, ok=True)
    for i in range(KEEP_TASKS + 10):
        tasks.start(f"t{i}", 1)
    assert tasks.get("t0") is None and tasks.get(f"t{KEEP_TASKS + 9}") is not None


def test_track_gains_clean_first_then_by_name():
    values = {
        "bench_psnr_gain_h264_crf30": "0.31",
        "bench_psnr_gain": 0.42,
        "bench_psnr_gain_mean": 0.36,
        "bench_psnr_gain_source": "version tag",
        "bench_psnr_gain_blur": math.nan,
        "bench_psnr_gain_jpeg_q40": "n/a",
        "bench_psnr": 31.0,
        "tier": "fast",
    }
    assert list(track_gains(values).items()) == [("clean", 0.42), ("h264_crf30", 0.31)]
    assert track_gains({}) == {}
