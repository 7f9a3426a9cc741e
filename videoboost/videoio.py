"""Writing videos with PyAV: browser-playable H.264 MP4, source audio copied, resumable jobs.

Everything here goes through PyAV's bundled FFmpeg (no system ``ffmpeg``):

* :func:`probe` reads a video's exact frame rate (a :class:`~fractions.Fraction`, so 29.97 stays
  ``30000/1001``), frame count, size and audio streams.
* :class:`VideoWriter` encodes RGB frames to H.264 (libx264, yuv420p, BT.709, ``+faststart``)
  at an exact rate, one frame per pts, and can copy another file's audio packets unchanged.
  It writes to a hidden temp file beside the destination and renames it into place only when
  everything succeeded, so a reader never sees a half-written video.
* :func:`upscale_video` runs a caller-supplied ``process_frames`` over a video in segments.
  Each segment is encoded to its own MP4 in a work folder with a JSON manifest, so a rerun
  after a crash (even ``kill -9``) continues from the first unfinished segment. The segments
  are then joined by remuxing their H.264 packets (no second encode), the source audio is
  added, and the result replaces ``dst`` atomically.

Decoding uses PyAV too (not :mod:`videoboost.frames`, which decodes with OpenCV): probing,
frame counting, timestamps and the audio copy then all come from one demuxer, so the frame
count that is checked is the frame count that was decoded.

Odd sizes: yuv420p stores chroma at half resolution, so H.264 needs even width and height.
An odd-sized frame is padded by one replicated row/column at the bottom/right (rather than
cropped: no source pixel is lost, and the padding is invisible); the writer logs this and
reports it in :attr:`VideoWriter.note`.

Hostile sources:

* Rotation metadata (phone clips store landscape pixels plus a display matrix): frames are
  decoded upright (turned by the matrix's quarter turns) and the output carries no rotation,
  so every player, and the model, sees the picture as it is meant to be seen. A mirrored
  matrix is refused.
* Variable frame rate: frame ``i`` of the output is shown at the time frame ``i`` of the source
  was (its timestamps are kept), so the picture stays in sync with the untouched audio all
  along; a constant-rate source keeps its exact rate.
* Temp files are created ``0o600`` beside the output (exclusively, never through a link) and
  the segment folder is ``0o700``; the finished file gets the usual umask mode.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import itertools
import json
import logging
import math
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import ColorRange, Colorspace

from videoboost.errors import SourceError, VideoBoostError

log = logging.getLogger(__name__)

# Bump when the segment layout or manifest meaning changes: old work folders are then ignored.
_MANIFEST_VERSION = 1
_FASTSTART_SUFFIXES = {".mp4", ".m4v", ".mov"}
# AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic / AVColorRange codes for
# BT.709 limited range: tagged in the stream so browsers convert back with the same matrix.
_BT709 = 1
_RANGE_MPEG = 1


class OutputError(VideoBoostError):
    """The output video cannot be written (unwritable folder, audio codec the container refuses,
    a work folder from an incompatible run)."""


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


@dataclass(frozen=True)
class UpscaleResult:
    """Outcome of :func:`upscale_video`."""

    output: Path
    frames: int
    segments: int
    segments_reused: int
    seconds: float
    fps: Fraction
    width: int
    height: int
    note: str | None = None  # e.g. the odd-size padding


# --------------------------------------------------------------------------- reading


def _check_source(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise SourceError(f"{path}: not a file (a video file is expected)")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty (0 bytes); re-export or re-copy it")


def _open_input(path: Path, *, need_video: bool = True) -> av.container.InputContainer:
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


def _quarter_turns(path: Path, frame: av.VideoFrame) -> int:
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
    with _open_input(path) as container:
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
            rotation = _quarter_turns(path, frame) * 90
            rotation -= 360 if rotation > 180 else 0
        if rotation % 180:
            width, height = height, width
    if count_frames or (count_frames is None and frame_count <= 0):
        frame_count = sum(1 for _ in _decode(path, check_declared=False))
    return VideoProbe(path, fps, frame_count, width, height, codec, duration, audio, rotation)


def _decode(
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
    with _open_input(path) as container:
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
                        turns = _quarter_turns(path, frame)
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


# --------------------------------------------------------------------------- writing


def _even_pad(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _temp_path(dst: Path) -> Path:
    # Same folder as dst so os.replace is a rename on one filesystem; the suffix is kept so
    # FFmpeg picks the container from it; the leading dot hides it from casual listings.
    return dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.partial{dst.suffix}")


def _create_private(path: Path) -> None:
    """Create ``path`` empty, mode 0o600, failing if anything (a link too) is already there.

    FFmpeg then opens the existing regular file: a half-written video is never readable by
    other users, and a planted symlink cannot redirect the write.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.close(fd)


def _umask_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask)."""
    # os.umask() sets while it reads, which races with other threads; /proc does not.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    return 0o644


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _AudioCopier:
    """Copies every audio stream of a source into an output, packet for packet.

    Packets are muxed lazily, up to the time of the video just written, so the file is
    interleaved without holding either stream in memory.
    """

    def __init__(self, source: Path, output: av.container.OutputContainer) -> None:
        self._input = _open_input(source, need_video=False)  # music files are fine too
        self._map: dict[int, av.stream.Stream] = {}
        try:
            for stream in self._input.streams.audio:
                try:
                    out = output.add_stream_from_template(stream)
                except (ValueError, av.FFmpegError) as exc:
                    raise OutputError(
                        f"{source}: its {stream.codec_context.name} audio cannot be copied into "
                        f"a {output.format.name} file ({exc}); choose another output container"
                    ) from exc
                with contextlib.suppress(Exception):  # language etc.; cosmetic
                    out.metadata.update(stream.metadata)
                self._map[stream.index] = out
            self._packets = self._input.demux(*self._input.streams.audio) if self._map else iter(())
        except BaseException:
            self._input.close()
            raise
        self._pending: av.Packet | None = None
        self.packets = 0

    def _next(self) -> av.Packet | None:
        if self._pending is None:
            for packet in self._packets:
                if packet.dts is not None or packet.pts is not None:  # skip demuxer flush packets
                    self._pending = packet
                    break
        return self._pending

    def feed_until(self, output: av.container.OutputContainer, seconds: float | None) -> None:
        """Mux the source's audio packets that start at or before ``seconds`` (None: all)."""
        while (packet := self._next()) is not None:
            ts = packet.dts if packet.dts is not None else packet.pts
            if seconds is not None and float(ts * packet.time_base) > seconds:
                return
            self._pending = None
            packet.stream = self._map[packet.stream.index]
            output.mux(packet)
            self.packets += 1

    def close(self) -> None:
        self._input.close()


class _AtomicOutput:
    """An output container on a temp file that becomes ``dst`` only on :meth:`commit`."""

    def __init__(self, dst: Path) -> None:
        self.dst = dst
        self.temp = _temp_path(dst)
        options = {"movflags": "+faststart"} if dst.suffix.lower() in _FASTSTART_SUFFIXES else {}
        try:
            _create_private(self.temp)
            self.container = av.open(str(self.temp), "w", container_options=options)
        except FileExistsError as exc:  # never ours: a random name; do not touch it
            raise OutputError(f"{dst}: cannot create the temp file {self.temp}: {exc}") from exc
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.temp.unlink(missing_ok=True)
            raise OutputError(f"{dst}: cannot create the output video: {exc}") from exc
        self.audio: _AudioCopier | None = None

    def add_audio(self, source: Path | None) -> None:
        """Add ``source``'s audio streams (after the video stream, so video is stream 0)."""
        if source is not None:
            self.audio = _AudioCopier(source, self.container)

    def feed_audio(self, seconds: float | None) -> None:
        if self.audio is not None:
            self.audio.feed_until(self.container, seconds)

    def commit(self) -> None:
        try:
            self.feed_audio(None)
            self.container.close()  # writes the moov atom (moved to the front: faststart)
            if self.audio is not None:
                self.audio.close()
            # Flush to disk before the rename, so a power cut cannot leave an empty dst.
            _fsync(self.temp)
            os.chmod(self.temp, _umask_mode())
            os.replace(self.temp, self.dst)
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.dst}: the output cannot be written: {exc}") from exc
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
        if self.audio is not None:
            with contextlib.suppress(Exception):
                self.audio.close()
        self.temp.unlink(missing_ok=True)


class VideoWriter:
    """Encode RGB frames to a browser-playable H.264 video, atomically.

    Frame ``i`` gets pts ``i`` in time base ``1/fps``, so the file holds exactly the frames
    written at exactly ``fps``. Audio streams of ``audio_from`` are copied unchanged. Nothing
    appears at ``path`` unless the ``with`` block (or :meth:`close`) completes; on an exception
    the temp file is deleted.

    Example::

        with VideoWriter("out.mp4", Fraction(30000, 1001), audio_from="in.mp4") as writer:
            for rgb in frames:
                writer.write(rgb)

    Args:
        path: destination, normally ``.mp4`` (any container FFmpeg knows by suffix works).
        fps: exact frame rate, e.g. ``probe(src).fps``.
        audio_from: a file whose audio streams are copied (all of them), or None.
        crf: x264 constant rate factor (0-51; 18 is visually lossless for most content).
        preset: x264 speed/size trade-off ("ultrafast" ... "veryslow").
    """

    def __init__(
        self,
        path: str | Path,
        fps: Fraction | int,
        *,
        audio_from: str | Path | None = None,
        crf: int = 18,
        preset: str = "medium",
    ) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self.note: str | None = None
        self.width = 0  # encoded (even) size, known after the first frame
        self.height = 0
        self._out: _AtomicOutput | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._closed = False

    def __enter__(self) -> VideoWriter:
        self._open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self) -> None:
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = _AtomicOutput(self.path)

    def _start_stream(self, width: int, height: int) -> av.video.stream.VideoStream:
        assert self._out is not None
        stream = self._out.container.add_stream(
            "libx264", rate=self.fps, options={"crf": str(self.crf), "preset": self.preset}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1) / self.fps
        cc = stream.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = _BT709
        cc.color_range = _RANGE_MPEG
        self._out.add_audio(self.audio_from)
        return stream

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB; every frame must have the size of the first. Odd
                sizes are padded to even by edge replication (see :attr:`note`).
        """
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        self._open()
        h, w = rgb.shape[:2]
        if self._stream is None:
            self.height, self.width = h + h % 2, w + w % 2
            self._source_size = (h, w)
            if (h, w) != (self.height, self.width):
                self.note = (
                    f"frame size {w}x{h} is odd; padded to {self.width}x{self.height} by edge "
                    "replication (H.264 yuv420p needs even sizes)"
                )
                log.info("%s: %s", self.path, self.note)
            try:
                self._stream = self._start_stream(self.width, self.height)
            except BaseException:
                self.abort()
                raise
        elif (h, w) != self._source_size:
            raise ValueError(
                f"{self.path}: frame {self.frames_written} is {w}x{h}, "
                f"the first was {self._source_size[1]}x{self._source_size[0]}"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(_even_pad(rgb)), format="rgb24")
        # Convert with the BT.709 matrix the stream is tagged with (swscale defaults to 601).
        frame = frame.reformat(
            format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
        )
        frame.pts = self.frames_written
        # Not stream.time_base: the MP4 muxer replaces that with its own timescale once the
        # header is written, and the encoder would then squeeze several frames into one tick.
        frame.time_base = Fraction(1) / self.fps
        self._mux(self._stream.encode(frame))
        self.frames_written += 1

    def _mux(self, packets: Sequence[av.Packet]) -> None:
        assert self._out is not None
        for packet in packets:
            if packet.dts is not None:
                self._out.feed_audio(float(packet.dts * packet.time_base))
            self._out.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio and move the file into place."""
        if self._closed:
            return
        self._open()
        assert self._out is not None
        try:
            if self._stream is None:
                raise ValueError(f"{self.path}: no frame was written; an empty video is not valid")
            self._mux(self._stream.encode(None))
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._out.commit()

    def abort(self) -> None:
        """Discard everything written; ``path`` is left untouched."""
        self._closed = True
        if self._out is not None:
            self._out.abort()


# --------------------------------------------------------------------------- memory


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def limit_heap_retention(threshold: int = 1 << 20) -> bool:
    """Make glibc serve allocations of ``threshold`` bytes or more from mmap (process-wide).

    glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after
    which decoded and upscaled frames come from the heap, which it keeps: RSS then climbed
    segment after segment of a long video (263 -> 690 MB over 5 segments of 720p output
    without the model; 1107 -> 1407 MB with it) although nothing was leaked. A fixed
    threshold returns each frame's memory when it is freed (flat at 276 / ~1120 MB). Returns
    False where there is no glibc ``mallopt`` (other C libraries), which changes nothing.
    """
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


# --------------------------------------------------------------------------- segmented jobs


def _job_key(src: Path, **plan: Any) -> str:
    """The key of resumable work on ``src``: the source's identity (path, size, mtime) and the
    ``plan`` that shapes the output (format version, model key, segmenting, encoder settings).
    Work saved under another key is never reused."""
    st = src.stat()
    ident = {"src": str(src.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, **plan}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


class _Manifest:
    """The work folder's ``manifest.json``: which segments are finished, rewritten atomically."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        self.path = folder / "manifest.json"
        self.data: dict[str, Any] = {"key": key, "segments": {}}
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise OutputError(
                f"{folder}: the work folder's name is taken by a link or a file; remove it"
            )
        existing = self._load()
        if existing is not None and existing.get("key") == key:
            self.data = existing
        elif folder.exists():
            # Another source, model or setting: its segments must not leak into this output.
            if existing is not None:
                log.info("%s: work folder belongs to another job; starting afresh", folder)
            shutil.rmtree(folder)
        # Private: segments are the user's video, readable by nobody else while in progress.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
        for stale in folder.glob(".*.partial*"):  # temp files of a killed run
            stale.unlink(missing_ok=True)

    def _load(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def segment(self, i: int) -> dict[str, Any] | None:
        seg = self.data["segments"].get(str(i))
        if seg is None or not (self.folder / seg["file"]).is_file():
            return None
        return seg

    def save(self) -> None:
        tmp = self.folder / f".manifest.{secrets.token_hex(4)}.partial"
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def _segments_of(frames: Iterator[tuple[int, np.ndarray | None, float]], size: int):
    """Group decoded frames into lists of ``size`` (the last may be shorter)."""
    batch: list[tuple[int, np.ndarray | None, float]] = []
    for item in frames:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _encode_segment(
    path: Path,
    fps: Fraction,
    frames: Iterable[np.ndarray],
    expected: int,
    *,
    crf: int,
    preset: str,
) -> VideoWriter:
    writer = VideoWriter(path, fps, crf=crf, preset=preset)
    with writer:
        for rgb in frames:
            if writer.frames_written == expected:
                raise ValueError(f"process_frames returned more than the {expected} frames given")
            writer.write(rgb)
        if writer.frames_written != expected:
            raise ValueError(
                f"process_frames returned {writer.frames_written} frames for {expected} given; "
                "it must return one frame per input frame"
            )
    return writer


def _iter_segment_packets(
    files: Sequence[Path], fps: Fraction
) -> Iterator[tuple[av.Packet, int, int]]:
    """H.264 packets of the segment files, re-timed to one continuous stream.

    Yields ``(packet, pts, dts)`` in frames: ``pts`` is the output frame index, ``dts`` runs
    from ``-delay`` on. Each segment starts with an IDR frame, so joining them needs only an
    offset.

    With B-frames a segment's decode timestamps start ``delay`` frames before its first
    picture, and x264 picks a smaller delay for a segment too short for B-frames (often the
    last one). Every segment's dts is therefore shifted to the largest delay: the dts run on
    without a gap (a gap would stretch the stream's dts span and skew its average frame rate),
    and an earlier dts never breaks ``dts <= pts``.
    """

    def frames(ts: int, tb: Fraction) -> int:
        return round(ts * tb * fps)

    delays = []
    for file in files:
        with av.open(str(file)) as container:
            stream = container.streams.video[0]
            first = next((p for p in container.demux(stream) if p.dts is not None), None)
            delays.append(-frames(first.dts, stream.time_base) if first is not None else 0)
    delay = max(delays, default=0)
    offset = 0
    for file, own_delay in zip(files, delays, strict=True):
        shift = offset - (delay - own_delay)
        with av.open(str(file)) as container:
            stream = container.streams.video[0]
            tb = stream.time_base
            count = 0
            for packet in container.demux(stream):
                if packet.dts is None and packet.pts is None:
                    continue
                pts = frames(packet.pts, tb) + offset
                dts = frames(packet.dts if packet.dts is not None else packet.pts, tb) + shift
                yield packet, pts, dts
                count += 1
        offset += count


class _Timeline:
    """Output timestamps of frame indexes: a constant rate, or the source's own frame times.

    ``index`` may be negative for the decode timestamps before the first picture (B-frames).
    """

    def __init__(self, fps: Fraction, start_frame: int, times: Sequence[Fraction] | None):
        self.variable = times is not None
        if times is None:
            self.time_base = Fraction(1) / fps
            self._ticks: list[int] | None = None
            self._start, self._last = start_frame, 1
            return
        den = 1
        for t in times:
            den = den * t.denominator // math.gcd(den, t.denominator)
            if den > 1_000_000:  # odd time bases mixed: microseconds are exact enough
                den = 1_000_000
                break
        ticks = [round(t * den) for t in times]
        shift = min(0, ticks[0])  # a negative start is moved to 0, as for constant rate
        self._ticks = [t - shift for t in ticks]
        self.time_base = Fraction(1, den)
        self._last = max(1, round(den / fps))

    def at(self, index: int) -> int:
        if self._ticks is None:
            return self._start + index
        if index < 0:  # dts before the first picture: one tick apart, still before it
            return self._ticks[0] + index
        return self._ticks[index]

    def duration(self, index: int) -> int:
        if self._ticks is None or index + 1 >= len(self._ticks):
            return self._last
        return self._ticks[index + 1] - self._ticks[index]


def _kept_times(path: Path, times: Sequence[Fraction | None], fps: Fraction) -> list | None:
    """The source's frame times if they must be kept (variable rate), else ``None``.

    A source whose every frame lies within a quarter frame of a constant-rate grid is written
    at exactly ``fps``; otherwise re-timing to the average rate would drift from the audio
    by up to the longest stretch of slower or faster frames, so the times are kept.
    """
    if not times or any(t is None for t in times):
        return None
    t0, step = float(times[0]), 1 / float(fps)
    if all(abs(float(t) - t0 - i * step) <= step / 4 for i, t in enumerate(times)):
        return None
    if any(b <= a for a, b in itertools.pairwise(times)):
        log.warning("%s: frame times are not increasing; re-timed to %s fps", path, fps)
        return None
    return list(times)


def _concat(
    files: Sequence[Path],
    dst: Path,
    fps: Fraction,
    total: int,
    audio_from: Path,
    timeline: _Timeline,
) -> None:
    """Join segment MP4s into ``dst`` by remuxing (no re-encode), adding the source audio.

    The segments were encoded at ``fps``; ``timeline`` gives the output timestamps.
    """
    extradata = set()
    for file in files:
        with av.open(str(file)) as container:
            extradata.add(bytes(container.streams.video[0].codec_context.extradata or b""))
    if len(extradata) != 1:
        # Different SPS/PPS would need in-band headers; same settings never produce this.
        raise OutputError(
            f"{dst}: the segments were encoded with different H.264 parameters; delete the work "
            "folder and run again"
        )
    out = _AtomicOutput(dst)
    try:
        with av.open(str(files[0])) as first:
            stream = out.container.add_stream_from_template(first.streams.video[0])
        stream.time_base = timeline.time_base
        out.add_audio(audio_from)
        last_dts = None
        written = 0
        for packet, pts_frame, dts_frame in _iter_segment_packets(files, fps):
            pts, dts = timeline.at(pts_frame), timeline.at(dts_frame)
            if last_dts is not None and dts <= last_dts:
                raise OutputError(f"{dst}: segment timestamps overlap at frame {dts_frame}")
            last_dts = dts
            packet.pts, packet.dts = pts, dts
            packet.duration = timeline.duration(pts_frame)
            packet.time_base = timeline.time_base
            out.feed_audio(float(dts * timeline.time_base))
            packet.stream = stream
            out.container.mux(packet)
            written += 1
        if written != total:
            raise OutputError(f"{dst}: the segments hold {written} frames, expected {total}")
    except BaseException:
        out.abort()
        raise
    out.commit()


def _run_segments(
    src: Path,
    info: VideoProbe,
    manifest: _Manifest,
    process_frames: Callable[[list[np.ndarray]], Iterable[np.ndarray]],
    segment_frames: int,
    progress: Callable[[int, int], None] | None,
    crf: int,
    preset: str,
) -> tuple[int, list[Fraction | None]]:
    """Decode ``src`` once, process and encode every unfinished segment.

    Frames of finished segments are still decoded (the only exact way to find where the next
    segment starts) but not converted to RGB nor processed.

    Returns:
        ``(reused, times)``: finished segments reused, and every frame's source time.
    """
    data, folder = manifest.data, manifest.folder
    first_missing = 0
    while manifest.segment(first_missing) is not None:
        first_missing += 1
    decoded = _decode(src, rgb_from=first_missing * segment_frames)
    frames_done = reused = 0
    times: list[Fraction | None] = []
    for i, batch in enumerate(_segments_of(decoded, segment_frames)):
        times.extend(t for _, _, t in batch)
        if i == 0:
            # Keep the picture where the source had it relative to the audio.
            data["start_frame"] = max(0, round((batch[0][2] or 0) * info.fps))
        seg = manifest.segment(i)
        if seg is not None and seg["frames"] == len(batch):
            reused += 1
        else:
            lr = [rgb for _, rgb, _ in batch]
            if any(rgb is None for rgb in lr):  # a manifest that disagrees with the source
                raise OutputError(f"{folder}: the work folder is inconsistent; delete it")
            name = f"seg-{i:05d}.mp4"
            writer = _encode_segment(
                folder / name, info.fps, process_frames(lr), len(lr), crf=crf, preset=preset
            )
            size = [writer.width, writer.height]
            if data.setdefault("size", size) != size:
                (folder / name).unlink()
                raise ValueError(
                    f"process_frames changed the frame size between segments: "
                    f"{data['size']} before, {size} in segment {i}"
                )
            data["segments"][str(i)] = {"file": name, "frames": len(lr), "note": writer.note}
            manifest.save()  # only now is the segment finished
        frames_done += len(batch)
        if progress is not None:
            progress(frames_done, info.frame_count)
    data["total"] = frames_done
    manifest.save()
    return reused, times


def upscale_video(
    src: str | Path,
    dst: str | Path,
    process_frames: Callable[[list[np.ndarray]], Iterable[np.ndarray]],
    *,
    segment_frames: int = 64,
    work_dir: str | Path | None = None,
    job_key: str = "",
    progress: Callable[[int, int], None] | None = None,
    crf: int = 18,
    preset: str = "medium",
) -> UpscaleResult:
    """Run ``process_frames`` over a whole video, resumably, and write ``dst`` atomically.

    The source is decoded in order (memory: one segment of input frames, plus what
    ``process_frames`` holds). Every ``segment_frames`` frames are processed and encoded to
    ``<work_dir or dst folder>/.<dst name>.parts/seg-NNNNN.mp4``; ``manifest.json`` there
    records finished segments under a hash of (source path, size, mtime, ``job_key``,
    ``segment_frames``, crf, preset). A rerun with the same arguments reuses finished segments
    and calls ``process_frames`` only for the rest. Finally the segments are remuxed into one
    H.264 stream (no re-encode) with all source audio streams copied unchanged, ``dst`` is
    replaced atomically, and the work folder is deleted.

    The output has exactly the source's decoded frame count, at the source's exact frame rate;
    a variable-rate source keeps every frame's time instead (within a quarter frame of a
    constant grid counts as constant). Rotation metadata is applied: ``process_frames`` gets
    upright frames and the output is stored upright, without rotation metadata.

    Args:
        src: source video.
        dst: output video (``.mp4`` recommended); never partially written.
        process_frames: maps a list of ``(H, W, 3)`` uint8 RGB frames to the same number of
            ``(H', W', 3)`` uint8 RGB frames, the same size for every call. May return a list or
            any iterable; a generator is encoded as it yields, so memory stays at one output
            frame.
        segment_frames: frames per segment: the work lost to a crash, and the batch handed to
            ``process_frames``.
        work_dir: folder for the ``.parts`` work folder (default: next to ``dst``).
        job_key: what else determines the output, e.g. ``"model=3;scale=4;height=1080"``; a
            different key never reuses old segments.
        progress: called as ``progress(frames_done, frames_total)`` after each segment;
            ``frames_total`` is the container's count (0 if unknown).
        crf, preset: x264 settings, as in :class:`VideoWriter`.

    Returns:
        The output path, frames, segment counts, elapsed seconds, fps and encoded size.

    Raises:
        SourceError: the source is missing, empty, corrupt, truncated, has no frame, or is
            mirrored by its display matrix.
        OutputError: the output cannot be written (checked before any frame is processed:
            the folder, and whether the container takes the source's audio codecs).
        ValueError: ``process_frames`` broke its contract (count, size or dtype).
    """
    started = time.monotonic()
    limit_heap_retention()  # memory must not grow with the video's length
    src, dst = Path(src), Path(dst)
    if segment_frames < 1:
        raise ValueError(f"segment_frames must be >= 1, got {segment_frames}")
    # Fails fast, naming the file, for an unreadable source; never decodes to count.
    info = probe(src, count_frames=False)
    if src.resolve() == dst.resolve():
        raise OutputError(f"{dst}: the output would overwrite its own source; choose another path")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{dst.parent}: cannot create the output folder: {exc}") from exc
    pattern = f".{glob.escape(dst.name)}.*.partial{glob.escape(dst.suffix)}"
    for stale in dst.parent.glob(pattern):  # temp output of a killed run
        stale.unlink(missing_ok=True)
    # Before any frame is processed: can the folder be written, and will the container take
    # every audio stream? (A refusal at the very end would waste the whole run.)
    preflight = _AtomicOutput(dst)
    try:
        preflight.add_audio(src)
    finally:
        preflight.abort()
    folder = Path(work_dir) if work_dir is not None else dst.parent
    folder = folder / f".{dst.name}.parts"
    plan = dict(job_key=job_key, segment_frames=segment_frames, crf=crf, preset=preset)
    manifest = _Manifest(folder, _job_key(src, version=_MANIFEST_VERSION, **plan))
    data = manifest.data
    data.update(src=str(src), job_key=job_key, segment_frames=segment_frames, fps=str(info.fps))
    n_done = -(-data["total"] // segment_frames) if "total" in data else None
    if n_done is not None and all(manifest.segment(i) for i in range(n_done)):
        reused = n_done  # killed while joining: only the join is left
        times = [t for _, _, t in _decode(src, rgb_from=sys.maxsize)]
    else:
        try:
            reused, times = _run_segments(
                src, info, manifest, process_frames, segment_frames, progress, crf, preset
            )
        except SourceError:
            # Its segments are of no use: a repaired source has another size/mtime, so key.
            shutil.rmtree(folder, ignore_errors=True)
            raise

    total = data["total"]
    n_segments = -(-total // segment_frames)
    segs = [manifest.segment(i) for i in range(n_segments)]
    if any(s is None for s in segs):
        raise OutputError(f"{folder}: segments went missing during the run; run again")
    kept = _kept_times(src, times, info.fps)
    timeline = _Timeline(info.fps, data.get("start_frame", 0), kept)
    _concat([folder / s["file"] for s in segs], dst, info.fps, total, src, timeline)
    shutil.rmtree(folder, ignore_errors=True)
    width, height = data["size"]
    notes = [next((s["note"] for s in segs if s.get("note")), None)]
    if info.rotation:
        notes.append(
            f"turned upright by the source's rotation metadata ({info.rotation} degrees); "
            "the output has none"
        )
    if timeline.variable:
        notes.append(f"variable frame rate: the source's frame times are kept (~{info.fps} fps)")
    note = "; ".join(n for n in notes if n) or None
    return UpscaleResult(
        output=dst,
        frames=total,
        segments=n_segments,
        segments_reused=reused,
        seconds=time.monotonic() - started,
        fps=info.fps,
        width=width,
        height=height,
        note=note,
    )


__all__ = [
    "AudioStreamInfo",
    "OutputError",
    "UpscaleResult",
    "VideoProbe",
    "VideoWriter",
    "limit_heap_retention",
    "probe",
    "upscale_video",
]
