"""Video writing, audio copy and resumable segmented jobs, on tiny clips made with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from tiny import make_clip

from videoboost.errors import SourceError
from videoboost.video.pipeline import OutputError, VideoWriter, probe, upscale_video

NTSC = Fraction(30000, 1001)


def _level(i: int) -> int:
    # A distinct grey level per frame survives lossy coding, so a dropped, duplicated or
    # reordered frame shows up in the per-frame means.
    return 20 + (i * 37) % 200


def _picture(i: int, h: int, w: int) -> np.ndarray:
    img = np.full((h, w, 3), _level(i), np.uint8)
    img[2:10, (2 * i) % (w - 8) :][:, :8] = (230, 40, 40)  # a moving red square
    return img


def _make_clip(path: Path, n: int, *, rate: Fraction = NTSC, **kwargs) -> Path:
    """A clip whose frame ``i`` has its own grey level (see :func:`_picture`)."""
    return make_clip(path, n, rate=rate, picture=_picture, **kwargs)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _audio_packets(path: Path) -> list[list[tuple[bytes, int | None]]]:
    with av.open(str(path)) as c:
        streams = list(c.streams.audio)
        out: list[list[tuple[bytes, int | None]]] = [[] for _ in streams]
        for p in c.demux(*streams):
            if p.size:
                out[streams.index(p.stream)].append((bytes(p), p.duration))
        return out


def _nearest(scale: int):
    def process(frames: list[np.ndarray]) -> list[np.ndarray]:
        return [
            cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for f in frames
        ]

    return process


def _leftovers(folder: Path, dst: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{dst.name}"))


def test_upscale_video_keeps_frames_rate_and_all_audio(tmp_path):
    src = _make_clip(tmp_path / "in.mp4", 23, audio_streams=2)
    dst = tmp_path / "out" / "up.mp4"
    seen = []

    res = upscale_video(
        src,
        dst,
        _nearest(2),
        segment_frames=10,
        preset="ultrafast",
        progress=lambda *a: seen.append(a),
    )

    info = probe(dst)
    assert (info.frame_count, info.fps, info.width, info.height) == (23, NTSC, 96, 64)
    assert info.audio_codecs == ("aac", "aac")
    assert (res.frames, res.segments, res.segments_reused, res.output) == (23, 3, 0, dst)
    assert (res.width, res.height, res.fps, res.note) == (96, 64, NTSC, None)
    assert seen == [(10, 23), (20, 23), (23, 23)]
    # Audio is copied, not re-encoded: the very same packets, in order.
    assert _audio_packets(dst) == _audio_packets(src)
    # Every frame, once, in order: per-frame levels match the source's.
    src_frames, out_frames = _frames(src), _frames(dst)
    assert len(out_frames) == 23
    for a, b in zip(src_frames, out_frames, strict=True):
        assert b.shape == (64, 96, 3)
        assert abs(float(a.mean()) - float(b.mean())) < 2.0
        expected = cv2.resize(a, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        assert np.abs(b.astype(int) - expected).mean() < 3.0  # colours survive (BT.709 tagged)
    # Browser playback starts before the download ends: the index (moov) precedes the data.
    head = dst.read_bytes()
    assert head.find(b"moov") < head.find(b"mdat")
    assert _leftovers(dst.parent, dst) == []  # no temp file, no work folder


def test_video_without_audio_and_odd_sizes(tmp_path):
    # 47x33 lossless Matroska at 25 fps; Matroska states no frame count, so probe decodes.
    src = _make_clip(
        tmp_path / "odd.mkv",
        12,
        rate=Fraction(25),
        size=(47, 33),
        audio_streams=0,
        codec="ffv1",
        pix_fmt="bgr0",
    )
    assert probe(src).frame_count == 12
    dst = tmp_path / "odd_x3.mp4"

    res = upscale_video(src, dst, _nearest(3), segment_frames=5, preset="ultrafast")

    info = probe(dst)
    # 141x99 is odd: padded by one replicated column and row to 142x100, and said so.
    assert (info.frame_count, info.fps, info.width, info.height) == (12, 25, 142, 100)
    assert info.audio_streams == 0
    assert res.note and "142x100" in res.note and "141x99" in res.note
    src_frames, out_frames = _frames(src), _frames(dst)
    assert [round(f.mean()) for f in src_frames] == pytest.approx(
        [round(f[:99, :141].mean()) for f in out_frames], abs=2
    )


def test_videowriter_exact_rate_and_atomic_on_error(tmp_path):
    music = _make_clip(tmp_path / "music.mp4", 7, audio_streams=1)
    dst = tmp_path / "w.mp4"
    with VideoWriter(dst, NTSC, audio_from=music, preset="ultrafast") as writer:
        for i in range(7):
            writer.write(_picture(i, 32, 48))
        assert not dst.exists()  # only the finished file appears
    info = probe(dst, count_frames=True)
    assert (info.frame_count, info.fps, info.width, info.height) == (7, NTSC, 48, 32)
    assert _audio_packets(dst) == _audio_packets(music)

    failing = tmp_path / "fail.mp4"
    with pytest.raises(RuntimeError), VideoWriter(failing, 25, preset="ultrafast") as writer:
        writer.write(_picture(0, 32, 48))
        raise RuntimeError("model crashed")
    assert not failing.exists()
    assert _leftovers(tmp_path, failing) == []


def test_resume_after_crash_reuses_finished_segments(tmp_path):
    src = _make_clip(tmp_path / "in.mp4", 25, rate=Fraction(25))
    dst = tmp_path / "up.mp4"
    parts = tmp_path / ".up.mp4.parts"
    calls = 0

    def crash_on_second(frames):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("killed")
        return _nearest(2)(frames)

    with pytest.raises(RuntimeError, match="killed"):
        upscale_video(
            src, dst, crash_on_second, segment_frames=10, job_key="m1", preset="ultrafast"
        )
    assert not dst.exists()
    assert (parts / "seg-00000.mp4").is_file() and (parts / "manifest.json").is_file()
    assert not (parts / "seg-00001.mp4").exists()
    # What a kill -9 in the middle of writing leaves behind is cleaned up by the rerun.
    (parts / ".seg-00001.mp4.dead.partial.mp4").write_bytes(b"half")
    (tmp_path / ".up.mp4.dead.partial.mp4").write_bytes(b"half")

    sizes = []

    def counting(frames):
        sizes.append(len(frames))
        return _nearest(2)(frames)

    res = upscale_video(src, dst, counting, segment_frames=10, job_key="m1", preset="ultrafast")

    assert sizes == [10, 5]  # segments 1 and 2 only
    assert (res.frames, res.segments, res.segments_reused) == (25, 3, 1)
    info = probe(dst)
    assert (info.frame_count, info.fps, info.width, info.height) == (25, 25, 96, 64)
    assert info.audio_streams == 1
    levels = [f.mean() for f in _frames(dst)]
    assert levels == pytest.approx([f.mean() for f in _frames(src)], abs=2.0)
    assert not parts.exists()
    assert _leftovers(tmp_path, dst) == []


def test_killed_while_joining_reuses_every_segment(tmp_path):
    src = _make_clip(tmp_path / "in.mp4", 9, rate=Fraction(25))
    dst = tmp_path / "up.mp4"
    dst.mkdir()  # the final rename fails after every segment is done
    (dst / "x").touch()
    with pytest.raises(OutputError, match=r"up\.mp4"):
        upscale_video(src, dst, _nearest(2), segment_frames=4, preset="ultrafast")
    (dst / "x").unlink()
    dst.rmdir()

    def must_not_run(frames):
        raise AssertionError("all segments were finished")

    res = upscale_video(src, dst, must_not_run, segment_frames=4, preset="ultrafast")
    assert (res.frames, res.segments, res.segments_reused) == (9, 3, 3)
    info = probe(dst)
    assert (info.frame_count, info.width, info.audio_streams) == (9, 96, 1)


def test_other_job_key_never_reuses_segments(tmp_path):
    src = _make_clip(tmp_path / "in.mp4", 8, rate=Fraction(25), audio_streams=0)
    dst = tmp_path / "up.mp4"

    calls = 0

    def first_ok_then_crash(frames):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("killed")
        return _nearest(2)(frames)

    with pytest.raises(RuntimeError):
        upscale_video(
            src, dst, first_ok_then_crash, segment_frames=4, job_key="model-a", preset="ultrafast"
        )
    sizes = []
    upscale_video(
        src,
        dst,
        lambda f: sizes.append(len(f)) or _nearest(2)(f),
        segment_frames=4,
        job_key="model-b",
        preset="ultrafast",
    )
    assert sizes == [4, 4]
    assert probe(dst).frame_count == 8


@pytest.mark.parametrize(
    "content", [b"", np.random.default_rng(0).bytes(4096)], ids=["zero-byte", "random-bytes"]
)
def test_unreadable_source_names_the_file_and_writes_nothing(tmp_path, content):
    src = tmp_path / "broken.mp4"
    src.write_bytes(content)
    dst = tmp_path / "out.mp4"
    with pytest.raises(SourceError, match=r"broken\.mp4"):
        upscale_video(src, dst, _nearest(2))
    assert not dst.exists()
    assert _leftovers(tmp_path, dst) == []


@pytest.mark.parametrize("faststart", [True, False], ids=["index-first", "index-last"])
def test_truncated_source_fails_clearly(tmp_path, faststart):
    # Index first: the cut file opens and decodes, but short. Index last: it does not open.
    whole = _make_clip(
        tmp_path / "whole.mp4", 30, rate=Fraction(25), audio_streams=0, faststart=faststart
    )
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    dst = tmp_path / "out.mp4"
    with pytest.raises(SourceError, match=r"cut\.mp4"):
        upscale_video(cut, dst, _nearest(2), preset="ultrafast")
    assert not dst.exists()
    assert _leftovers(tmp_path, dst) == []


def test_audio_only_source_is_not_a_video(tmp_path):
    audio_only = tmp_path / "voice.m4a"
    with av.open(str(audio_only), "w") as out:
        a = out.add_stream("aac", rate=22050)
        a.layout = "mono"
        af = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="flt", layout="mono"
        )
        af.sample_rate, af.pts = 22050, 0
        out.mux(a.encode(af))
        out.mux(a.encode(None))
    with pytest.raises(SourceError, match=r"voice\.m4a.*no video stream"):
        probe(audio_only)


# --------------------------------------------------------------------------- overlapped stages


def test_overlapped_and_sequential_stages_write_the_same_video(tmp_path):
    # Textured, moving frames at the default preset (B-frames, several x264 threads), in
    # segments that do not divide the length: the overlap must not change a single pixel.
    src = make_clip(tmp_path / "in.mp4", 23, size=(64, 48), rate=NTSC, audio_streams=1)
    outs = {}
    for depth in (0, 8):
        dst = tmp_path / f"up-{depth}.mp4"
        res = upscale_video(src, dst, _nearest(2), segment_frames=6, queue_frames=depth)
        assert (res.frames, res.segments, res.fps) == (23, 4, NTSC)
        outs[depth] = dst
    seq, ovl = probe(outs[0]), probe(outs[8])
    assert (seq.frame_count, seq.fps, seq.width, seq.height) == (23, NTSC, 128, 96)
    assert (ovl.frame_count, ovl.fps, ovl.width, ovl.height) == (23, NTSC, 128, 96)
    assert seq.audio_codecs == ovl.audio_codecs == ("aac",)
    assert _audio_packets(outs[8]) == _audio_packets(outs[0]) == _audio_packets(src)
    a, b = _frames(outs[0]), _frames(outs[8])
    assert len(a) == len(b) == 23
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("depth", [0, 8], ids=["sequential", "overlapped"])
def test_a_failing_model_stage_stops_the_job_and_writes_nothing(tmp_path, depth):
    src = _make_clip(tmp_path / "in.mp4", 20, rate=Fraction(25))
    dst = tmp_path / "up.mp4"
    calls = 0

    def model(frames):
        nonlocal calls
        calls += 1
        for k, rgb in enumerate(_nearest(2)(frames)):
            if calls == 2 and k == 3:
                raise RuntimeError("the model ran out of memory")
            yield rgb

    with pytest.raises(RuntimeError, match="ran out of memory"):
        upscale_video(src, dst, model, segment_frames=8, preset="ultrafast", queue_frames=depth)
    assert calls == 2  # the job stopped at the failure
    assert not dst.exists()
    assert _leftovers(tmp_path, dst) == [".up.mp4.parts"]  # no temp output, only the work
    parts = tmp_path / ".up.mp4.parts"
    # The segment finished before the failure is kept for a rerun; the failing one left nothing.
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "seg-00000.mp4"]


@pytest.mark.parametrize("depth", [0, 8], ids=["sequential", "overlapped"])
def test_a_failing_encoder_stage_reaches_the_caller_with_its_message(tmp_path, depth):
    src = _make_clip(tmp_path / "in.mp4", 12, rate=Fraction(25))
    dst = tmp_path / "up.mp4"

    def wrong_dtype(frames):
        return [f.astype(np.float32) for f in frames]  # the encoder refuses these

    with pytest.raises(ValueError, match=r"uint8 RGB"):
        upscale_video(src, dst, wrong_dtype, segment_frames=4, queue_frames=depth)
    assert not dst.exists()
    parts = tmp_path / ".up.mp4.parts"
    assert list(parts.iterdir()) == []  # no half-written segment, no temp file


def test_a_failing_decoder_stage_stops_the_model_and_writes_nothing(tmp_path):
    whole = _make_clip(tmp_path / "whole.mp4", 40, rate=Fraction(25), faststart=True)
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])  # opens, decodes, then runs out
    dst = tmp_path / "out.mp4"
    with pytest.raises(SourceError, match=r"cut\.mp4"):
        upscale_video(cut, dst, _nearest(2), segment_frames=8, preset="ultrafast")
    assert not dst.exists()
    assert _leftovers(tmp_path, dst) == []  # the source is bad: its segments are no use
