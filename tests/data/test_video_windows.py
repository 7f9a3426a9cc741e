"""A video-tier model everywhere a video goes: segments, resumes, fan-out parts and scene cuts
give the frames of one pass; the CLI takes a registered video model; the service says its mode.

Tiny untrained video generators with a random last convolution, so every output pixel depends
on the neighbours in its window; real H.264 clips in ``tmp_path``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from media import moving_frames, texture
from tiny import decoded_frames, make_clip

from videoboost.config import EngineConfig

N = 10  # frames of the test clip: segments of 4 cut it at 4 and 8


def video_generator(seed: int = 0):
    """A x2 video-tier generator (k = 1, 9 input channels) whose output depends on the window."""
    import keras

    from models.networks import build_generator
    from videoboost.config import GeneratorConfig

    keras.utils.set_random_seed(seed)
    gen = build_generator(GeneratorConfig(tier="video", scale=2, filters=4, blocks=1))
    layer = gen.get_layer("to_subpixels")  # zero at init: the output would be bicubic only
    kernel, bias = layer.get_weights()
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.5, kernel.shape).astype("float32"), bias])
    # A fresh video generator ignores its neighbours (their first-conv weights start at zero).
    first = gen.get_layer("conv0")
    kernel, bias = first.get_weights()
    kernel[:, :, 3:, :] = rng.normal(0, 0.3, kernel[:, :, 3:, :].shape)
    first.set_weights([kernel, bias])
    return gen


@pytest.fixture(scope="module")
def upscaler():
    from videoboost.inference.engine import Upscaler, infer_window, keras_predict

    gen = video_generator()
    assert infer_window(gen) == 1
    return Upscaler(keras_predict(gen), 2, EngineConfig(tile=0, batch=3), window=1)


class Capturing:
    """An :class:`Upscaler` that keeps every frame it yields (the model's output before any
    encoding), and can fail after ``fail_after`` frames like an interrupted run."""

    def __init__(self, upscaler, fail_after: int | None = None):
        self.upscaler, self.fail_after, self.out = upscaler, fail_after, []

    def __getattr__(self, name):
        return getattr(self.upscaler, name)

    def upscale_frames(self, frames, **kwargs):
        for sr in self.upscaler.upscale_frames(frames, **kwargs):
            if self.fail_after is not None and len(self.out) == self.fail_after:
                raise RuntimeError("interrupted")
            self.out.append(_pixels(sr))
            yield sr


def _pixels(frame) -> np.ndarray:
    """What a job hands its encoder, as an array: the video jobs pass planar yuv420p frames
    (videoboost/video/colour.py), an RGB frame is converted the same way to compare."""
    from videoboost.video.colour import Yuv420, rgb_to_yuv420

    if not isinstance(frame, Yuv420):
        frame = rgb_to_yuv420(np.asarray(frame, np.float32))
    return frame.data.copy()


def _run(upscaler, src, dst, segment_frames):
    from videoboost.batch.jobs import Job, upscale_jobs

    (outcome,) = upscale_jobs([Job(src, dst, "video")], upscaler, model_id="m",
                              segment_frames=segment_frames, preset="ultrafast",
                              progress=False, log=lambda line: None)  # fmt: skip
    return outcome


def test_segments_and_a_resume_give_the_frames_of_one_pass(upscaler, tmp_path):
    src = make_clip(tmp_path / "clip.mp4", N)
    one = Capturing(upscaler)
    assert _run(one, src, tmp_path / "one.mp4", segment_frames=64).ok
    assert len(one.out) == N
    # Neighbours matter: the same frames alone (each repeated) come out otherwise.
    stills = [_pixels(upscaler.upscale_image(f)) for f in decoded_frames(src)]
    assert all(np.abs(a.astype(int) - b).max() > 8 for a, b in zip(one.out, stills, strict=True))

    segmented = Capturing(upscaler)
    assert _run(segmented, src, tmp_path / "seg.mp4", segment_frames=4).ok
    for a, b in zip(segmented.out, one.out, strict=True):
        np.testing.assert_array_equal(a, b)

    # Interrupted in the second segment, then rerun: the first segment is reused, and the
    # rest (whose first frame needs the reused segment's last one) equals one pass.
    dst = tmp_path / "resumed.mp4"
    broken = Capturing(upscaler, fail_after=6)
    assert not _run(broken, src, dst, segment_frames=4).ok
    rerun = Capturing(upscaler)
    outcome = _run(rerun, src, dst, segment_frames=4)
    assert outcome.ok and "resumed: 1 of 3 segments" in outcome.message
    assert len(rerun.out) == N - 4
    for a, b in zip(rerun.out, one.out[4:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(decoded_frames(dst)) == N


def test_a_scene_cut_resets_the_window(upscaler):
    from videoboost.data.align import is_cut

    # A bright shot, then a dark one (a cut); the same dark shot after another bright one.
    shot = [f // 2 + 120 for f in moving_frames(6, 32, 48, seed=1)]
    other_shot = [f // 2 for f in moving_frames(6, 32, 48, seed=2)]
    elsewhere = [f // 2 + 128 for f in moving_frames(6, 32, 48, seed=3)]
    assert is_cut(shot[-1], other_shot[0]) and is_cut(elsewhere[-1], other_shot[0])

    def upscaled(frames):  # in segments of 4, so the cut falls mid-segment and at a boundary
        out = []
        for a in range(0, len(frames), 4):
            before, after = frames[max(0, a - 1) : a], frames[a + 4 : a + 5]
            out += upscaler.upscale_frames(frames[a : a + 4], before=before, after=after)
        return out

    a, b = upscaled(shot + other_shot), upscaled(elsewhere + other_shot)
    for x, y in zip(a[6:], b[6:], strict=True):  # after the cut: nothing of before it
        np.testing.assert_array_equal(x, y)
    assert np.abs(a[5].astype(int) - b[5]).max() > 8  # before it: its own shot
    # The first frame after the cut is that frame with its next neighbour only, both sides.
    whole = list(upscaler.upscale_frames(other_shot))
    np.testing.assert_array_equal(a[6], whole[0])


def test_a_fanout_part_boundary_gives_the_frames_of_one_pass(upscaler, tmp_path):
    from videoboost.batch.fanout import prepare_video, stitch, upscale_part

    x264 = {"bf": "2", "g": "4", "keyint_min": "4", "sc_threshold": "0"}
    src = make_clip(tmp_path / "long.mp4", 16, seed=2, x264=x264)
    plan = prepare_video(src, tmp_path / "parts.mp4", split_frames=6, job_key="k", context=1)
    assert [p.frames for p in plan.parts] == [8, 8]
    outs = []
    for part in plan.parts:
        capture = Capturing(upscaler)
        upscale_part(plan, part, capture)
        outs += capture.out
    assert stitch(plan)["frames"] == 16
    whole = [_pixels(f) for f in upscaler.upscale_frames(decoded_frames(src), planar=True)]
    for a, b in zip(outs, whole, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cli_upscales_a_folder_with_a_registered_video_model(tmp_path, capsys):
    import cv2
    import toys

    from videoboost.cli import main
    from videoboost.video.pipeline import probe

    version = toys.register(video_generator(1), scale=2)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    cv2.imwrite(str(src / "still.png"), texture(20, 24, seed=5))
    make_clip(src / "clip.mp4", 7, size=(48, 32), rate=Fraction(30000, 1001))
    rc = main(["upscale", str(src), "-o", str(out), "--model",
               f"models:/videoboost-generator/{version}", "--segment-frames", "4", "--quiet",
               "--runtime", "tf-f32"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4", "still.png"]
    assert cv2.imread(str(out / "still.png")).shape == (40, 48, 3)
    info = probe(out / "clip.mp4", count_frames=True)
    assert (info.frame_count, info.fps, info.width) == (7, Fraction(30000, 1001), 96)
    assert "video tier, window of 3" in err


def test_every_runtime_candidate_takes_a_window(tmp_path):
    from videoboost.evaluation import runtime_select as rs

    gen = video_generator(2)
    cfg = rs._config_of(gen)  # conv0 as the fast tier, yet 9 inputs: never rebuilt as fast
    assert (cfg.tier, cfg.window, cfg.trunk, cfg.filters, cfg.blocks) == ("video", 1, "fast", 4, 1)
    assert rs.probe_frames(32, 48, window=1)[0].shape == (1, 32, 48, 9)
    int8 = None
    if (
        rs.openvino_capabilities()
    ):  # NNCF on a few small windows (the default calibrates at 320x180)
        from videoboost.inference import runtimes

        int8 = runtimes.quantize_openvino(
            runtimes.openvino_model(gen), rs.probe_frames(32, 48, window=1)
        )
    choice = rs.select(gen, size=(48, 32), rounds=1, cache=tmp_path / "c.json", int8_model=int8)
    assert choice.predict(rs.probe_frames(32, 48, window=1)[0]).shape == (1, 64, 96, 3)
    # Each candidate this host has (OpenVINO's int8 included) builds and runs on windows; one
    # may still be refused for agreement (a random toy model is not a trained one).
    for name, row in choice.table.items():
        why = row.get("refused", "")
        assert "does not build" not in why and "fails on the probe" not in why, (name, why)


def test_frames_of_a_request_are_stills_batched_and_the_mode_is_said(upscaler):
    # /upscale_frames: each frame on its own (repeated into a window), batched all the same.
    from videoboost.inference.engine import Upscaler, still_predict

    calls = []

    def counted(batch):
        calls.append(len(batch))
        return upscaler.predict(batch)

    stills = Upscaler(still_predict(counted, 1), 2, EngineConfig(tile=0, batch=3))
    frames = moving_frames(3, 16, 24)
    for a, f in zip(stills.upscale_frames(frames), frames, strict=True):
        np.testing.assert_array_equal(a, upscaler.upscale_image(f))
    assert calls == [3]
    assert stills.mode == "single-frame"  # the service says the model's mode, not this one's
    assert upscaler.mode == "video tier, window of 3 (a lone image is repeated)"
