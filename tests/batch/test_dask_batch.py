"""Batch upscaling fanned out on Dask: a real LocalCluster (2 worker processes on 127.0.0.1),
a real Prefect server, real videos with audio; compared with the default (threaded) run."""

import contextlib
import itertools
from fractions import Fraction

import av
import numpy as np
import pytest
from tiny import audio_packets, decoded_frames, make_clip

from videoboost.config import DaskConfig

SPLIT = 12  # frames: the 40-frame clip with a keyframe every 8 is cut at 16 and 32


def keyframed_clip(path, n=40, gop=8, size=(48, 32), rate=Fraction(25)):
    """H.264 with B-frames and a keyframe exactly every ``gop`` frames, plus AAC audio."""
    x264 = {"bf": "2", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
    return make_clip(path, n, size=size, rate=rate, seed=2, x264=x264)


def stream_facts(path):
    """Frame count (decoded), exact rate, size; audio packet count and duration."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0]
        frames = sum(1 for _ in c.decode(v))
        audio_duration = float(a.duration * a.time_base)
        return {
            "frames": frames,
            "fps": Fraction(v.guessed_rate),
            "size": (v.codec_context.width, v.codec_context.height),
            "audio_codec": a.codec_context.name,
            "audio_duration": audio_duration,
        }


# --------------------------------------------------------------------------- no cluster


def test_keyframe_parts_cover_every_frame_once(tmp_path):
    from videoboost.batch.fanout import keyframe_parts

    long = keyframed_clip(tmp_path / "long.mp4")
    parts = keyframe_parts(long, SPLIT)
    assert [p.frames for p in parts] == [16, 16, 8]
    assert parts[0].start_pts is None and parts[-1].end_pts is None
    for before, after in itertools.pairwise(parts):
        assert before.end_pts == after.start_pts  # no gap, no overlap
    # Not cut: short, a single keyframe (x264 ultrafast, keyint 250), not a video.
    assert keyframe_parts(long, 40) is None
    assert keyframe_parts(make_clip(tmp_path / "one_gop.mp4", 40), SPLIT) is None
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 10)
    assert keyframe_parts(tmp_path / "junk.mp4", SPLIT) is None


def test_parts_upscaled_here_and_stitched_equal_the_whole_video_job(tmp_path):
    # The fan-out path without Dask: plan, each part (decode, model, encode overlapped), the
    # stitch through videoboost.video.segments; against upscale_video on the same clip.
    from videoboost.batch.fanout import prepare_video, stitch, upscale_part
    from videoboost.config import EngineConfig
    from videoboost.inference.engine import Upscaler
    from videoboost.video.pipeline import upscale_video

    def nearest(batch):  # a real predict for the real engine: x2 nearest neighbour
        return np.repeat(np.repeat(batch, 2, axis=1), 2, axis=2)

    upscaler = Upscaler(nearest, 2, EngineConfig())
    src = keyframed_clip(tmp_path / "long.mp4")
    plan = prepare_video(src, tmp_path / "parts.mp4", split_frames=SPLIT, job_key="k")
    assert [p.frames for p in plan.parts] == [16, 16, 8]
    done = [upscale_part(plan, part, upscaler) for part in plan.parts]
    assert [d["frames"] for d in done] == [16, 16, 8] and not any(d["reused"] for d in done)
    assert stitch(plan)["frames"] == 40
    whole = upscale_video(src, tmp_path / "whole.mp4", lambda f: upscaler.upscale_frames(f))

    assert stream_facts(plan.dst) == stream_facts(whole.output)
    assert stream_facts(plan.dst)["frames"] == 40 and stream_facts(plan.dst)["size"] == (96, 64)
    assert audio_packets(plan.dst) == audio_packets(src)
    # Other cuts give other GOPs, so not bit-identical: the same pictures, in the same order,
    # each within coding loss of the source upscaled (neighbours differ by far more).
    ref = [np.repeat(np.repeat(f, 2, 0), 2, 1).astype(int) for f in decoded_frames(src)]
    assert min(np.abs(x - y).mean() for x, y in itertools.pairwise(ref)) > 8
    for out in (plan.dst, whole.output):
        errors = [np.abs(x - y).mean() for x, y in zip(ref, decoded_frames(out), strict=True)]
        assert max(errors) < 6
    assert not plan.workdir.exists()


def test_dask_settings_from_parameters_and_environment():
    from flows.batch import dask_task_runner

    assert DaskConfig.from_env({}) is None  # the default: no Dask
    cfg = DaskConfig.from_env(
        {"VIDEOBOOST_DASK_ADDRESS": "tcp://10.0.0.5:8786", "VIDEOBOOST_DASK_SPLIT_FRAMES": "300"}
    )
    assert (cfg.address, cfg.split_frames) == ("tcp://10.0.0.5:8786", 300)
    with pytest.raises(ValueError, match="VIDEOBOOST_DASK_WORKERS='0'"):
        DaskConfig.from_env({"VIDEOBOOST_DASK_WORKERS": "0"})

    remote = dask_task_runner(cfg)
    assert remote.address == "tcp://10.0.0.5:8786" and not remote.cluster_kwargs
    local = dask_task_runner(DaskConfig(workers=3))
    assert local.address is None
    assert local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["host"] == "127.0.0.1"


# --------------------------------------------------------------------------- real cluster


# What a worker process imports to run the batch tasks: Prefect's task engine, TensorFlow (the
# model), the flow's module and the fan-out. Imported once, in the fork server both worker
# processes start from, instead of once in each (~10 CPU-s apiece on this machine).
_WORKER_IMPORTS = ["distributed", "tensorflow", "prefect", "prefect_dask", "av", "flows.batch",
                   "models.networks", "videoboost.batch.fanout", "videoboost.mlops.tracking"]  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    """A real LocalCluster: a scheduler and 2 worker processes (nannies) on 127.0.0.1.

    The workers start from a fork server (not the default spawn) that imported
    ``_WORKER_IMPORTS`` first: clean processes (the fork server forks before running anything
    of TensorFlow), each loading the model itself from the flow's ``ModelRef`` as on a remote
    cluster, minus the repeated imports."""
    import multiprocessing
    from multiprocessing import forkserver

    import dask
    from distributed import LocalCluster
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context()  # Dask sets its own preload list once; ours replaces it
        multiprocessing.get_context("forkserver").set_forkserver_preload(_WORKER_IMPORTS)
        try:
            with LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                host="127.0.0.1",
                processes=True,
                dashboard_address=None,
            ) as local:
                yield local
        finally:
            # The fork server holds those imports (~0.5 GB) until the test process ends.
            with contextlib.suppress(AttributeError):
                forkserver._forkserver._stop()


@pytest.mark.slow
def test_dask_run_matches_the_sequential_run(prefect_server, cluster, model_file, tmp_path):
    from flows.batch import batch_upscale

    inputs = tmp_path / "in"
    inputs.mkdir()
    make_clip(inputs / "a.mp4", 10)
    make_clip(inputs / "b.mp4", 7, rate=Fraction(30000, 1001), seed=1)
    keyframed_clip(inputs / "long.mp4")

    seq = batch_upscale([str(inputs)], out_dir=str(tmp_path / "seq"), model=str(model_file))
    dask = DaskConfig(address=cluster.scheduler_address, split_frames=SPLIT)
    dsk = batch_upscale(
        [str(inputs)], out_dir=str(tmp_path / "dask"), model=str(model_file), dask=dask
    )

    # Where the work ran: the default in this process, one task per video; on Dask the long
    # video as 3 part tasks, and the tasks on the cluster's two workers.
    assert {w for d in seq["done"] for w in d["workers"]} == {"local"}
    assert [d["parts"] for d in seq["done"]] == [1, 1, 1]
    by_name = {d["input"].rsplit("/", 1)[1]: d for d in dsk["done"]}
    assert by_name["long.mp4"]["parts"] == 3 and by_name["a.mp4"]["parts"] == 1
    used = {w for d in dsk["done"] for w in d["workers"]}
    assert used == set(cluster.scheduler_info["workers"])

    for name, frames in (("a.mp4", 10), ("b.mp4", 7), ("long.mp4", 40)):
        a, b = tmp_path / "seq" / name, tmp_path / "dask" / name
        facts = stream_facts(b)
        assert facts == stream_facts(a)
        assert facts["frames"] == frames and facts["size"] == (192, 128)
        assert audio_packets(b) == audio_packets(a) == audio_packets(inputs / name)
        # Same pictures in the same order. Parts are encoded apart, so frames are not
        # bit-equal, but each must still be nearest to its own sequential twin: a frame lost,
        # doubled or shifted would be nearest to a neighbour.
        seq_frames, dask_frames = decoded_frames(a), decoded_frames(b)
        for i, frame in enumerate(dask_frames):
            diffs = [np.abs(frame.astype(int) - other).mean() for other in seq_frames]
            assert int(np.argmin(diffs)) == i and diffs[i] < 3.0, (name, i, diffs[i])
    assert stream_facts(inputs / "long.mp4")["fps"] == Fraction(25)
    left = sorted(p.name for p in (tmp_path / "dask").iterdir())
    assert left == ["a.mp4", "b.mp4", "long.mp4"]  # no work folder or temp file left


@pytest.mark.slow
def test_failing_item_on_dask_is_reported_while_others_finish(
    prefect_server, cluster, model_file, tmp_path
):
    from flows.batch import batch_upscale

    good = keyframed_clip(tmp_path / "good.mp4", n=24)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00 not a video at all" * 64)
    out = tmp_path / "out"
    dask = DaskConfig(address=cluster.scheduler_address, split_frames=SPLIT)
    state = batch_upscale(
        [str(good), str(broken)], out_dir=str(out), model=str(model_file), dask=dask,
        return_state=True,
    )  # fmt: skip
    assert state.is_failed()
    with pytest.raises(Exception, match=r"1 of 2 inputs failed \(broken\.mp4\)"):
        state.result()
    assert stream_facts(out / "good.mp4")["frames"] == 24  # split in 2 parts, stitched
    assert not (out / "broken.mp4").exists()


@pytest.mark.slow
def test_unreachable_scheduler_is_one_clear_error(prefect_server, model_file, tmp_path):
    import socket

    from flows.batch import batch_upscale
    from videoboost.batch.fanout import ClusterUnavailable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clip = make_clip(tmp_path / "a.mp4", 4)
    dask = DaskConfig(address=f"tcp://127.0.0.1:{port}", timeout_s=2)
    state = batch_upscale([str(clip)], out_dir=str(tmp_path / "out"), model=str(model_file),
                          dask=dask, return_state=True)  # fmt: skip
    assert state.is_failed()
    with pytest.raises(ClusterUnavailable, match=f"scheduler at tcp://127.0.0.1:{port}"):
        state.result()
    assert not (tmp_path / "out").exists()
