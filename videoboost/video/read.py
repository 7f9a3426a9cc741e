"""Reading videos with PyAV: exact probing and upright, in-order decoding with constant memory.

Decoding uses PyAV (not :mod:`videoboost.data.frames`, which decodes with OpenCV): probing, frame
counting, timestamps and the audio copy then all come from one demuxer, so the frame count
that is checked is the frame count that was decoded.

Hostile sources:

* Rotation metadata (phone clips store landscape pixels plus a display matrix): frames are
  decoded upright (turned by the matrix's quarter turns), so every consumer, and the model,
  sees the picture as it is meant to be seen. A mirrored matrix is refused.
* Truncated files: a container that declares far more frames than decode is refused.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType

from videoboost.errors import SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioStreamInfo:
    """One audio stream of a file."""

    index: int  # position among the file's streams
    codec: str  # e.g. "aac"
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class VideoProbe:
    """What :func:`probe` found in a video file.

    Attributes:
        path: the file.
        fps: exact frame rate, e.g. ``Fraction(30000, 1001)``.
        frame_count: frames in the first video stream (the container's count when it has one,
            otherwise counted by decoding).
        width, height: picture size in pixels.
        codec: video codec name, e.g. ``"h264"``.
        duration: seconds, ``None`` when the container does not say.
        audio: the audio streams, in file order.
    """

    path: Path
    fps: Fraction
    frame_count: int
    width: int
    height: int
    codec: str
    duration: float | None
    audio: tuple[AudioStreamInfo, ...]
    rotation: int = 0  # counter-clockwise degrees of the display matrix; width/height are upright

    @property
    def audio_streams(self) -> int:
        return len(self.audio)

    @property
    def audio_codecs(self) -> tuple[str, ...]:
        return tuple(a.codec for a in self.audio)


def _check_source(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise SourceError(f"{path}: not a file (a video file is expected)")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty (0 bytes); re-export or re-copy it")


def open_input(path: Path, *, need_video: bool = True) -> av.container.InputContainer:
    """Open ``path`` for demuxing; ``need_video=False`` accepts audio-only files.

    Raises:
        SourceError: missing, empty, unreadable, or (with ``need_video``) no video stream.
    """
    _check_source(path)
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"{path}: cannot be read as a video (corrupt or not a video): {exc}"
        ) from exc
    if need_video and not container.streams.video:
        container.close()
        # MP4/MOV demuxers drop a video track without samples, so zero-frame lands here too.
        raise SourceError(
            f"{path}: has no video stream or no video frame (audio-only, zero-frame or not a "
            "video file)"
        )
    return container


def _stream_rate(path: Path, stream: av.video.stream.VideoStream) -> Fraction:
    """The exact frame rate of a video stream.

    ``average_rate`` is frames / duration; ``guessed_rate`` is FFmpeg's nominal rate. For a
    constant-rate file they agree, and the nominal one is exact (30000/1001 rather than a
    rounded 2997/100), so it wins when they agree within 0.1 %. A variable-rate file keeps its
    average, which is what preserves its duration.
    """
    avg = stream.average_rate
    guess = stream.guessed_rate
    if avg and guess and abs(Fraction(guess) - Fraction(avg)) <= Fraction(avg) / 1000:
        return Fraction(guess)
    for rate in (avg, guess, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    raise SourceError(f"{path}: the video stream has no frame rate; it cannot be re-timed")


def _audio_info(container: av.container.InputContainer) -> tuple[AudioStreamInfo, ...]:
    return tuple(
        AudioStreamInfo(
            index=s.index,
            codec=s.codec_context.name,
            sample_rate=int(s.codec_context.sample_rate or 0),
            channels=int(s.codec_context.channels or 0),
        )
        for s in container.streams.audio
    )


def quarter_turns(path: Path, frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that make ``frame`` upright (its display matrix).

    Raises:
        SourceError: a mirrored matrix, or a rotation that is not a multiple of 90 degrees.
    """
    matrix = frame.side_data.get(SideDataType.DISPLAYMATRIX)
    if matrix is None:
        return 0
    a, b, _, c, d = np.frombuffer(bytes(matrix), "<i4")[:5].astype(np.int64)
    if a * d - b * c < 0:
        raise SourceError(
            f"{path}: the video is mirrored by its display matrix, which is not supported; "
            "re-export it without mirroring"
        )
    degrees = int(frame.rotation)
    if degrees % 90:
        raise SourceError(
            f"{path}: rotation metadata of {degrees} degrees is not a multiple of 90; re-export "
            "it upright"
        )
    return (degrees // 90) % 4


def probe(path: str | Path, *, count_frames: bool | None = None) -> VideoProbe:
    """Read a video's exact frame rate, frame count, size and audio streams.

    Width and height are the displayed (upright) size: a phone clip stored 1920x1080 with a
    90-degree rotation reports 1080x1920 and ``rotation=90``.

    Args:
        path: a video file.
        count_frames: ``None`` (default): use the container's frame count, and count by
            decoding only when it has none (e.g. Matroska/WebM). ``True``: always decode and
            count (slow; exact even for a truncated file). ``False``: never decode; the count
            is 0 when the container does not say.

    Raises:
        SourceError: missing, empty, corrupt, not a video, or no decodable frame.
    """
    path = Path(path)
    with open_input(path) as container:
        stream = container.streams.video[0]
        fps = _stream_rate(path, stream)
        frame_count = int(stream.frames or 0)
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        width, height = stream.codec_context.width, stream.codec_context.height
        audio = _audio_info(container)
        codec = stream.codec_context.name
        # Rotation is stream side data that FFmpeg hands out on decoded frames.
        rotation = 0
        with contextlib.suppress(av.FFmpegError, StopIteration):
            frame = next(container.decode(stream))
            rotation = quarter_turns(path, frame) * 90
            rotation -= 360 if rotation > 180 else 0
        if rotation % 180:
            width, height = height, width
    if count_frames or (count_frames is None and frame_count <= 0):
        frame_count = sum(1 for _ in decode_frames(path, check_declared=False))
    return VideoProbe(path, fps, frame_count, width, height, codec, duration, audio, rotation)


def decode_frames(
    path: Path, *, rgb_from: int = 0, check_declared: bool = True
) -> Iterator[tuple[int, np.ndarray | None, Fraction | None]]:
    """Decode the first video stream in order, with constant memory.

    Yields ``(index, rgb, seconds)``: ``rgb`` is ``(H, W, 3)`` uint8 RGB, upright (rotation
    metadata applied), for frames at or after ``rgb_from`` and ``None`` before it (frames of
    finished segments are decoded to keep the count exact, but the colour conversion is
    skipped); ``seconds`` is the exact presentation time, ``None`` for a frame without one.

    Raises:
        SourceError: unreadable, a decode error mid-stream, no frame at all, or far fewer
            frames than the container declares (truncated download or copy).
    """
    index = 0
    with open_input(path) as container:
        stream = container.streams.video[0]
        declared = int(stream.frames or 0)
        # Frame threads speed decoding of large sources; order and count are unaffected.
        stream.thread_type = "AUTO"
        turns = None
        try:
            for frame in container.decode(stream):
                rgb = None
                if index >= rgb_from:
                    if turns is None:
                        turns = quarter_turns(path, frame)
                    rgb = frame.to_ndarray(format="rgb24")
                    if turns:
                        rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                seconds = None
                if frame.pts is not None and frame.time_base is not None:
                    seconds = frame.pts * Fraction(frame.time_base)
                yield index, rgb, seconds
                index += 1
        except av.FFmpegError as exc:
            raise SourceError(
                f"{path}: decoding failed after {index} frames (corrupt or truncated): {exc}"
            ) from exc
    if index == 0:
        raise SourceError(f"{path}: no frame could be decoded (zero-frame or truncated video)")
    # A cut-off MP4 with its index at the front decodes cleanly but short. Edit lists can make
    # the declared count exceed the shown frames by a few, so small shortfalls only warn.
    if check_declared and declared and index < declared:
        shortfall = declared - index
        if shortfall > max(2, declared // 100):
            raise SourceError(
                f"{path}: the container declares {declared} frames but only {index} decode "
                "(truncated file); re-copy or re-download it"
            )
        log.warning("%s: %d frames decoded, container declares %d", path, index, declared)


__all__ = ["AudioStreamInfo", "VideoProbe", "decode_frames", "open_input", "probe", "quarter_turns"]
