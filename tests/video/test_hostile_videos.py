"""Hostile or broken videos through `videoboost upscale` (in-process, a real tiny model, real
files): each is upscaled correctly or refused with one readable line, never a traceback, and a
refusal writes nothing (an existing output is left as it was, no temp file or segment folder).
Plus the dataset side: OpenCV frames of a rotated phone clip come out upright."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from tiny import audio_packets, hidden_files, make_clip, upscale_cli

from videoboost.video.pipeline import probe

SCALE = 4
RED = (250, 20, 20)


def _marked(i: int, h: int, w: int) -> np.ndarray:
    """Grey with a red block in the stored top-left corner (shows where "up" went)."""
    img = np.full((h, w, 3), 90 + (i * 7) % 60, np.uint8)
    img[: h // 3, : w // 3] = RED
    return img


def write_video(
    path: Path,
    n: int,
    *,
    size: tuple[int, int] = (48, 32),
    rate: int = 25,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    hflip: bool = False,
    audio: tuple[tuple[str, str, str], ...] = (),
) -> Path:
    """``n`` H.264 frames (``size`` = w, h) at ``pts`` (in ``time_base``) or 0..n-1, with an
    optional display rotation, and ``audio`` streams given as ``(codec, sample format,
    language)``, each a second of silence-free tone."""
    w, h = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "10"}
        if time_base is not None:
            video.codec_context.time_base = video.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation, hflip=hflip)
        sounds = []
        for codec, fmt, language in audio:
            sound = out.add_stream(codec, rate=22050)
            sound.layout = "mono"
            sound.metadata["language"] = language
            sounds.append((sound, fmt))
        out.start_encoding()
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_marked(i, h, w), format="rgb24")
            frame.pts = pts[i] if pts else i
            if time_base is not None:
                frame.time_base = time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
        for sound, fmt in sounds:
            samples = {
                "s16": (wave * 32767).astype(np.int16),
                "u8": (wave * 127 + 128).astype(np.uint8),
            }.get(fmt, wave.astype(np.float32))
            for k in range(0, 22050 - 1024, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[None, k : k + 1024]), format=fmt, layout="mono"
                )
                chunk.sample_rate, chunk.pts = 22050, k
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def _first_frame(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24"), frame.rotation


def _red_quadrant(rgb: np.ndarray) -> str:
    """Which quadrant of the picture holds the red block: "tl", "tr", "bl" or "br"."""
    h, w = rgb.shape[:2]
    redness = rgb[..., 0].astype(int) - rgb[..., 1].astype(int)
    quads = {
        "tl": redness[: h // 2, : w // 2],
        "tr": redness[: h // 2, w // 2 :],
        "bl": redness[h // 2 :, : w // 2],
        "br": redness[h // 2 :, w // 2 :],
    }
    return max(quads, key=lambda q: quads[q].mean())


# --------------------------------------------------------------------------- refused


def _truncated(tmp_path: Path) -> Path:
    # Index first (faststart): the cut file opens and decodes cleanly, only short.
    whole = make_clip(tmp_path / "whole.mp4", 30, faststart=True)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _zero_frame_mkv(tmp_path: Path) -> Path:
    # Matroska keeps a video track without frames (with its audio): a recording that failed.
    return write_video(tmp_path / "empty.mkv", 0, audio=(("aac", "fltp", "eng"),))


def _zero_frame_mp4(tmp_path: Path) -> Path:
    # MP4 drops a track without samples: what is left is audio only.
    return write_video(tmp_path / "empty.mp4", 0, audio=(("aac", "fltp", "eng"),))


def _mirrored(tmp_path: Path) -> Path:
    return write_video(tmp_path / "selfie.mp4", 4, rotation=90, hflip=True)


def _pcm_u8_audio(tmp_path: Path) -> Path:
    return write_video(tmp_path / "pcm.mkv", 4, audio=(("pcm_u8", "u8", "eng"),))


@pytest.mark.parametrize(
    "make, code, words",
    [
        (_truncated, 2, ["cut.mp4", "truncated", "re-copy or re-download"]),
        (_zero_frame_mkv, 2, ["empty.mkv", "no frame could be decoded", "zero-frame"]),
        (_zero_frame_mp4, 2, ["empty.mp4", "no video frame", "zero-frame"]),
        (_mirrored, 2, ["selfie.mp4", "mirrored", "re-export it without mirroring"]),
        (_pcm_u8_audio, 1, ["pcm.mkv", "pcm_u8", "choose another output container"]),
    ],
    ids=["truncated", "zero-frame-mkv", "zero-frame-mp4", "mirrored", "audio-mp4-refuses"],
)
def test_refused_with_one_line_and_nothing_written(tmp_path, model_file, capsys, make, code, words):
    src = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "up.mp4"
    dst.write_bytes(b"an older result")  # a refusal must not touch it

    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(dst))

    assert rc == code, err
    assert "Traceback" not in err
    failed = [line for line in err.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1, err
    for word in words:
        assert word in failed[0], failed[0]
    assert dst.read_bytes() == b"an older result"
    assert hidden_files(out) == []  # no temp file, no segment folder


# --------------------------------------------------------------------------- handled


def test_variable_frame_rate_keeps_every_frame_time_and_the_audio(tmp_path, model_file, capsys):
    # 30 fps, then 15 fps, then 60 fps (ticks of 1/90000 s): re-timing to the average rate
    # would put the middle frames up to ~3 frames away from their sound.
    steps = [3000] * 9 + [6000] * 6 + [1500] * 6
    pts = [sum(steps[:i]) for i in range(len(steps) + 1)]
    src = write_video(
        tmp_path / "phone.mp4",
        len(pts),
        rate=30,
        pts=pts,
        time_base=Fraction(1, 90000),
        audio=(("aac", "fltp", "eng"),),
    )
    dst = tmp_path / "phone_x4.mp4"

    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(dst))

    assert rc == 0, err
    assert "variable frame rate: the source's frame times are kept" in err

    def times(path: Path) -> list[float]:
        with av.open(str(path)) as container:
            return [float(f.time) for f in container.decode(video=0)]

    assert times(dst) == pytest.approx([t / 90000 for t in pts], abs=1e-4)
    assert audio_packets(dst) == audio_packets(src)
    assert (probe(dst).width, probe(dst).height) == (48 * SCALE, 32 * SCALE)


def test_constant_rate_is_not_mistaken_for_variable(tmp_path, model_file, capsys):
    src = make_clip(tmp_path / "ntsc.mp4", 9, rate=Fraction(30000, 1001), audio_streams=0)
    dst = tmp_path / "ntsc_x4.mp4"
    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(dst))
    assert rc == 0, err
    assert "variable" not in err
    info = probe(dst, count_frames=True)
    assert (info.fps, info.frame_count, info.audio_streams) == (Fraction(30000, 1001), 9, 0)


def test_odd_dimensions_size_rule(tmp_path, model_file, capsys):
    # MPEG-4 Part 2 stores 127x95 yuv420p (H.264 cannot); x4 gives an even 508x380 as is.
    src = make_clip(tmp_path / "odd.mp4", 5, size=(127, 95), codec="mpeg4")
    assert (probe(src).width, probe(src).height) == (127, 95)
    native, tall = tmp_path / "odd_x4.mp4", tmp_path / "odd_191.mp4"

    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(native))
    assert rc == 0, err
    assert (probe(native).width, probe(native).height) == (508, 380)
    assert "padded" not in err

    # An odd height asked for is padded by one replicated row (width is rounded to even).
    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(tall), "--height", "191")
    assert rc == 0, err
    assert (probe(tall).width, probe(tall).height) == (256, 192)
    assert "padded to 256x192" in err
    rgb, _ = _first_frame(tall)
    assert np.abs(rgb[190].astype(int) - rgb[191].astype(int)).mean() < 4  # replicated edge


def test_no_audio_gives_no_audio(tmp_path, model_file, capsys):
    src = make_clip(tmp_path / "mute.mp4", 6, audio_streams=0)
    dst = tmp_path / "mute_x4.mp4"
    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(dst))
    assert rc == 0, err
    info = probe(dst, count_frames=True)
    assert (info.frame_count, info.audio_streams) == (6, 0)


def test_several_audio_streams_of_several_codecs_are_all_kept(tmp_path, model_file, capsys):
    src = write_video(
        tmp_path / "dub.mkv",
        8,
        audio=(("aac", "fltp", "eng"), ("libmp3lame", "fltp", "fra"), ("flac", "s16", "deu")),
    )
    dst = tmp_path / "dub_x4.mp4"
    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(dst))
    assert rc == 0, err
    assert probe(dst).audio_codecs == probe(src).audio_codecs == ("aac", "mp3float", "flac")
    assert audio_packets(dst) == audio_packets(src)  # copied packet for packet, not re-encoded
    with av.open(str(dst)) as container:
        assert [s.metadata.get("language") for s in container.streams.audio] == [
            "eng",
            "fra",
            "deu",
        ]


def test_audio_the_mp4_refuses_is_kept_in_matroska(tmp_path, model_file, capsys):
    src = _pcm_u8_audio(tmp_path)
    dst = tmp_path / "pcm_x4.mkv"  # what the refusal above says to do
    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(dst))
    assert rc == 0, err
    assert probe(dst).audio_codecs == ("pcm_u8",)
    assert audio_packets(dst) == audio_packets(src)


@pytest.mark.parametrize(
    "rotation, quadrant", [(90, "bl"), (-90, "tr"), (180, "br")], ids=["90", "-90", "180"]
)
def test_rotated_phone_clip_comes_out_upright(tmp_path, model_file, capsys, rotation, quadrant):
    # Stored 48x32 with the red block top-left; shown turned `rotation` degrees counter-clockwise.
    src = write_video(tmp_path / "phone.mp4", 5, rotation=rotation, audio=(("aac", "fltp", "eng"),))
    upright = (32, 48) if rotation % 180 else (48, 32)
    info = probe(src)
    assert ((info.width, info.height), info.rotation) == (upright, rotation)
    dst = tmp_path / "phone_x4.mp4"

    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(dst))

    assert rc == 0, err
    assert f"rotation metadata ({rotation} degrees)" in err
    rgb, out_rotation = _first_frame(dst)
    assert out_rotation == 0  # stored upright: no player has to turn it
    assert rgb.shape[:2] == (upright[1] * SCALE, upright[0] * SCALE)
    assert _red_quadrant(rgb) == quadrant
    assert probe(dst, count_frames=True).frame_count == 5
    assert audio_packets(dst) == audio_packets(src)


def test_rotated_clip_gives_upright_training_frames(tmp_path):
    from videoboost.data.frames import iter_video_frames, read_video_info

    src = write_video(tmp_path / "phone.mp4", 3, rotation=90)
    info = read_video_info(src)
    assert (info.width, info.height) == (32, 48)
    frames = list(iter_video_frames(src))
    assert len(frames) == 3
    assert frames[0].rgb.shape == (48, 32, 3)
    assert _red_quadrant(frames[0].rgb) == "bl"
    # The same picture the upscaler decodes (PyAV, turned by the same metadata).
    from videoboost.video.read import decode_frames

    _, rgb, _ = next(decode_frames(src))
    assert np.abs(rgb.astype(int) - frames[0].rgb.astype(int)).mean() < 3
