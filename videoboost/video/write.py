"""Writing videos with PyAV: browser-playable H.264, source audio copied, atomic outputs.

* :class:`VideoWriter` encodes RGB frames to H.264 (libx264, yuv420p, BT.709, ``+faststart``)
  at an exact rate, one frame per pts, and can copy another file's audio packets unchanged.
* :class:`AtomicOutput` is the container under it: a hidden temp file beside the destination
  (created ``0o600``, exclusively, never through a link), renamed into place only when
  everything succeeded, so a reader never sees a half-written video.
* :func:`check_writable` is the preflight every job runs before its first frame: can the
  folder be written, and will the container take every audio stream of the source?

Odd sizes: yuv420p stores chroma at half resolution, so H.264 needs even width and height.
An odd-sized frame is padded by one replicated row/column at the bottom/right (rather than
cropped: no source pixel is lost, and the padding is invisible); the writer logs this and
reports it in :attr:`VideoWriter.note`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from videoboost.errors import VideoBoostError
from videoboost.video.colour import Yuv420
from videoboost.video.read import open_input

log = logging.getLogger(__name__)

_FASTSTART_SUFFIXES = {".mp4", ".m4v", ".mov"}
# AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic / AVColorRange codes for
# BT.709 limited range: tagged in the stream so browsers convert back with the same matrix.
_BT709 = 1
_RANGE_MPEG = 1
# The default x264 settings of every video VideoBoost writes. superfast at CRF 18 measured
# 45.6 dB PSNR on Y against the frames it was given (medium: 45.9 dB) for 28 CPU-ms a 720p
# frame instead of 101 (bench notes in the README): visually lossless at a quarter of the cost,
# for about 1.3x the bytes.
DEFAULT_CRF = 18
DEFAULT_PRESET = "superfast"


class OutputError(VideoBoostError):
    """The output video cannot be written (unwritable folder, audio codec the container refuses,
    a work folder from an incompatible run)."""


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
        self._input = open_input(source, need_video=False)  # music files are fine too
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


class AtomicOutput:
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
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
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
        self._out: AtomicOutput | None = None
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
            self._out = AtomicOutput(self.path)

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

    def write(self, rgb: np.ndarray | Yuv420) -> None:
        """Append one frame.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB (converted to yuv420p by swscale), or a
                :class:`videoboost.video.colour.Yuv420` frame (encoded as it is, no conversion);
                every frame must have the size of the first. Odd sizes are padded to even by
                edge replication (see :attr:`note`).
        """
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        if not isinstance(rgb, Yuv420):
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
        if isinstance(rgb, Yuv420):
            frame = rgb.to_frame()
        else:
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


def check_writable(dst: Path, audio_from: Path | None) -> None:
    """Fail now, not after the last frame, if ``dst`` cannot be written with the audio of
    ``audio_from``: creates and deletes a temp file beside ``dst`` and adds the audio streams.

    Raises:
        OutputError: the folder is not writable, or its container refuses an audio codec.
    """
    preflight = AtomicOutput(dst)
    try:
        preflight.add_audio(audio_from)
    finally:
        preflight.abort()


__all__ = [
    "DEFAULT_CRF",
    "DEFAULT_PRESET",
    "AtomicOutput",
    "OutputError",
    "VideoWriter",
    "check_writable",
]
