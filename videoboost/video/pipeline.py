"""Upscaling a whole video: decoding, the model and encoding overlapped, resumable, atomic.

:func:`upscale_video` runs a caller-supplied ``process_frames`` over a video in segments. Three
stages run at once, joined by bounded queues (:mod:`videoboost.video.stages`): a thread decodes the
source, the caller's thread runs ``process_frames`` (the model), and a thread encodes each
segment to its own MP4 in a work folder (:mod:`videoboost.video.segments`), so a rerun after a crash
(even ``kill -9``) continues from the first unfinished segment. The segments are then joined by
remuxing their H.264 packets (no second encode), the source audio is added, and the result
replaces ``dst`` atomically. ``queue_frames=0`` runs the same stages one after another in the
caller's thread; both give the same file.

Reading and writing live in :mod:`videoboost.video.read` and :mod:`videoboost.video.write`;
their public names are re-exported here for callers of the one-module API.
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from videoboost.errors import SourceError
from videoboost.heap import limit_heap_retention
from videoboost.video.read import AudioStreamInfo, VideoProbe, decode_frames, probe
from videoboost.video.segments import (
    Timeline,
    WorkFolder,
    join_segments,
    kept_times,
    result_note,
    start_frame,
    work_key,
)
from videoboost.video.stages import WriteBehind, read_ahead
from videoboost.video.write import (
    DEFAULT_CRF,
    DEFAULT_PRESET,
    OutputError,
    VideoWriter,
    check_writable,
)

# Bump when the segment layout or manifest meaning changes: old work folders are then ignored.
_MANIFEST_VERSION = 1
# Frames waiting between two stages. Enough for the model to run its next batch (4 frames)
# while the encoder works through the last one; at 1280x720 out that is ~22 MB of queued
# output, whatever the video's length.
QUEUE_FRAMES = 8

ProcessFrames = Callable[..., Iterable[np.ndarray]]
"""``process_frames(frames)``, or ``process_frames(frames, before=, after=)`` with context."""


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


def _segments_of(
    frames: Iterator[tuple[int, np.ndarray | None, Fraction | None]], size: int, ahead: int = 0
):
    """Group decoded frames into lists of ``size`` (the last may be shorter).

    Yields ``(segment, following)``: ``following`` is up to ``ahead`` frames after the segment
    (the next segment's first frames, read ahead so a window model sees past the segment's end).
    """
    buf: list[tuple[int, np.ndarray | None, Fraction | None]] = []
    for item in frames:
        buf.append(item)
        if len(buf) == size + ahead:
            yield buf[:size], buf[size:]
            del buf[:size]
    while buf:
        yield buf[:size], buf[size : size + ahead]
        del buf[:size]


class _SegmentEncoder:
    """The encoding stage: each segment's frames to its own MP4, recorded once complete.

    It is the only writer of the work folder's manifest while the stages run (the caller's
    thread sends what to record as messages), so the manifest is never saved mid-change.
    Messages: ``("open", i)``, ``("frame", rgb)``, ``("close", i)``, ``("record", (key, value))``
    and ``("drop", None)`` (discard the open segment).
    """

    def __init__(self, work: WorkFolder, fps: Fraction, crf: int, preset: str) -> None:
        self.work = work
        self.fps, self.crf, self.preset = fps, crf, preset
        self.writer: VideoWriter | None = None

    def feed(self, message: tuple[str, object]) -> None:
        kind, value = message
        if kind == "frame":
            assert self.writer is not None
            self.writer.write(value)
        elif kind == "open":
            path = self.work.folder / f"seg-{value:05d}.mp4"
            self.writer = VideoWriter(path, self.fps, crf=self.crf, preset=self.preset)
            self.writer.__enter__()  # its private temp file exists from now on, as in a `with`
        elif kind == "close":
            self._finish(int(value))
        elif kind == "record":
            key, item = value
            self.work.data[key] = item
        elif kind == "drop":
            self.abort()

    def _finish(self, i: int) -> None:
        writer, self.writer = self.writer, None
        assert writer is not None
        writer.close()
        data = self.work.data
        size = [writer.width, writer.height]
        if data.setdefault("size", size) != size:
            writer.path.unlink()
            raise ValueError(
                f"process_frames changed the frame size between segments: "
                f"{data['size']} before, {size} in segment {i}"
            )
        data["segments"][str(i)] = {
            "file": writer.path.name,
            "frames": writer.frames_written,
            "note": writer.note,
        }
        self.work.save()  # only now is the segment finished

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()  # the segment's temp file; finished segments stay for a rerun
            self.writer = None


def _process_segment(
    i: int,
    batch: list[tuple[int, np.ndarray | None, Fraction | None]],
    process_frames: ProcessFrames,
    encode: WriteBehind,
    work: WorkFolder,
    context: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
) -> None:
    """The model stage of one segment: its frames through ``process_frames``, to the encoder.

    ``context``: the ``(before, after)`` neighbours to hand on, or None for a caller that
    takes none (``upscale_video(context=0)``).
    """
    lr = [rgb for _, rgb, _ in batch]
    if any(rgb is None for rgb in lr):  # a manifest that disagrees with the source
        raise OutputError(f"{work.folder}: the work folder is inconsistent; delete it")
    encode.put(("open", i))
    count = 0
    if context is None:
        out = process_frames(lr)
    else:
        out = process_frames(lr, before=context[0], after=context[1])
    for sr in out:
        if count == len(lr):
            raise ValueError(f"process_frames returned more than the {len(lr)} frames given")
        encode.put(("frame", sr))
        count += 1
    if count != len(lr):
        raise ValueError(
            f"process_frames returned {count} frames for {len(lr)} given; "
            "it must return one frame per input frame"
        )
    encode.put(("close", i))


def _run_segments(
    src: Path,
    info: VideoProbe,
    work: WorkFolder,
    process_frames: ProcessFrames,
    segment_frames: int,
    progress: Callable[[int, int], None] | None,
    crf: int,
    preset: str,
    queue_frames: int,
    context: int = 0,
) -> tuple[int, list[Fraction | None]]:
    """Decode ``src`` once, process and encode every unfinished segment, stages overlapped.

    Frames of finished segments are still decoded (the only exact way to find where the next
    segment starts) but not converted to RGB nor processed, except the ``context`` frames just
    before the first unfinished segment (its neighbours).

    Returns:
        ``(reused, times)``: finished segments reused, and every frame's source time.
    """
    finished = {int(i) for i in work.data["segments"] if work.segment(int(i)) is not None}
    first_missing = 0
    while first_missing in finished:
        first_missing += 1
    frames_done = reused = 0
    times: list[Fraction | None] = []
    # The ``context`` frames before the first missing segment are its neighbours: RGB too.
    rgb_from = max(0, first_missing * segment_frames - context)
    decoder = read_ahead(decode_frames(src, rgb_from=rgb_from), queue_frames, name="decode")
    before: list[np.ndarray] = []  # the previous segment's last ``context`` frames
    encoder = _SegmentEncoder(work, info.fps, crf, preset)
    with (
        contextlib.closing(decoder),
        WriteBehind(encoder.feed, queue_frames, on_abort=encoder.abort, name="encode") as encode,
    ):
        try:
            segments = _segments_of(decoder, segment_frames, context)
            for i, (batch, following) in enumerate(segments):
                times.extend(t for _, _, t in batch)
                if i == 0:
                    encode.put(("record", ("start_frame", start_frame(batch[0][2], info.fps))))
                if i in finished and work.data["segments"][str(i)]["frames"] == len(batch):
                    reused += 1
                else:
                    after = [rgb for _, rgb, _ in following]
                    ctx = (before, after) if context else None
                    _process_segment(i, batch, process_frames, encode, work, ctx)
                if context:
                    before = [rgb for _, rgb, _ in batch[-context:] if rgb is not None]
                frames_done += len(batch)
                if progress is not None:
                    progress(frames_done, info.frame_count)
        except BaseException:
            # Segments already handed to the encoder are finished, so a rerun reuses them, as
            # when the stages ran one after another; only the open one is dropped.
            with contextlib.suppress(BaseException):
                encode.put(("drop", None))
                encode.close()
            raise
    work.data["total"] = frames_done  # the encoder has ended: the manifest is ours again
    work.save()
    return reused, times


def upscale_video(
    src: str | Path,
    dst: str | Path,
    process_frames: ProcessFrames,
    *,
    segment_frames: int = 64,
    context: int = 0,
    work_dir: str | Path | None = None,
    job_key: str = "",
    progress: Callable[[int, int], None] | None = None,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
    queue_frames: int = QUEUE_FRAMES,
) -> UpscaleResult:
    """Run ``process_frames`` over a whole video, resumably, and write ``dst`` atomically.

    The source is decoded in order on its own thread, ``process_frames`` runs in the caller's
    thread and the encoder on a third, with at most ``queue_frames`` frames waiting between
    two stages (memory: one segment of input frames, the queues, plus what ``process_frames``
    holds; none of it grows with the video's length). Every ``segment_frames`` frames are
    processed and encoded to ``<work_dir or dst folder>/.<dst name>.parts/seg-NNNNN.mp4``;
    ``manifest.json`` there records finished segments under a hash of (source path, size,
    mtime, ``job_key``, ``segment_frames``, crf, preset). A rerun with the same arguments
    reuses finished segments and calls ``process_frames`` only for the rest. Finally the
    segments are remuxed into one H.264 stream (no re-encode) with all source audio streams
    copied unchanged, ``dst`` is replaced atomically, and the work folder is deleted.

    The output has exactly the source's decoded frame count, at the source's exact frame rate;
    a variable-rate source keeps every frame's time instead (within a quarter frame of a
    constant grid counts as constant). Rotation metadata is applied: ``process_frames`` gets
    upright frames and the output is stored upright, without rotation metadata.

    Args:
        src: source video.
        dst: output video (``.mp4`` recommended); never partially written.
        process_frames: maps a list of ``(H, W, 3)`` uint8 RGB frames to the same number of
            ``(H', W', 3)`` uint8 RGB frames, or of :class:`videoboost.video.colour.Yuv420`
            frames (encoded without a colour conversion; what ``Upscaler.upscale_frames(...,
            planar=True)`` yields), the same size for every call. May return a list or any
            iterable; a generator is encoded as it yields.
        segment_frames: frames per segment: the work lost to a crash, and the batch handed to
            ``process_frames``.
        context: frames of context a side for a model that sees neighbours (a video-tier
            window's ``k``). Above 0, ``process_frames`` is called as
            ``process_frames(frames, before=..., after=...)`` with up to ``context`` frames just
            before and after the segment (fewer at the clip's ends), also on a rerun that
            resumes after finished segments, so segment boundaries never change the output.
            0 (default): ``process_frames(frames)``.
        work_dir: folder for the ``.parts`` work folder (default: next to ``dst``).
        job_key: what else determines the output, e.g. ``"model=3;scale=4;height=1080"``; a
            different key never reuses old segments.
        progress: called as ``progress(frames_done, frames_total)`` after each segment is
            processed; ``frames_total`` is the container's count (0 if unknown).
        crf, preset: x264 settings, as in :class:`VideoWriter` (default: CRF 18, superfast).
        queue_frames: frames waiting between stages; 0 runs the stages one after another in
            the caller's thread (same output, no overlap).

    Returns:
        The output path, frames, segment counts, elapsed seconds, fps and encoded size.

    Raises:
        SourceError: the source is missing, empty, corrupt, truncated, has no frame, or is
            mirrored by its display matrix.
        OutputError: the output cannot be written (checked before any frame is processed:
            the folder, and whether the container takes the source's audio codecs).
        ValueError: ``process_frames`` broke its contract (count, size or dtype).
        Any error of ``process_frames`` itself, unchanged; the stages stop and ``dst`` is not
        written (finished segments stay in the work folder for a rerun).
    """
    started = time.monotonic()
    limit_heap_retention()  # memory must not grow with the video's length
    src, dst = Path(src), Path(dst)
    if segment_frames < 1:
        raise ValueError(f"segment_frames must be >= 1, got {segment_frames}")
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
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
    # Before any frame is processed (a refusal at the very end would waste the whole run).
    check_writable(dst, src)
    folder = Path(work_dir) if work_dir is not None else dst.parent
    folder = folder / f".{dst.name}.parts"
    plan = dict(job_key=job_key, segment_frames=segment_frames, crf=crf, preset=preset)
    if context:  # only then: the keys of single-frame work folders stay as they were
        plan["context"] = context
    work = WorkFolder(folder, work_key(src, version=_MANIFEST_VERSION, **plan))
    data = work.data
    data.update(src=str(src), job_key=job_key, segment_frames=segment_frames, fps=str(info.fps))
    n_done = -(-data["total"] // segment_frames) if "total" in data else None
    if n_done is not None and all(work.segment(i) for i in range(n_done)):
        reused = n_done  # killed while joining: only the join is left
        times = [t for _, _, t in decode_frames(src, rgb_from=sys.maxsize)]
    else:
        try:
            reused, times = _run_segments(
                src, info, work, process_frames, segment_frames, progress, crf, preset,
                queue_frames, context,
            )  # fmt: skip
        except SourceError:
            # Its segments are of no use: a repaired source has another size/mtime, so key.
            shutil.rmtree(folder, ignore_errors=True)
            raise

    total = data["total"]
    n_segments = -(-total // segment_frames)
    segs = [work.segment(i) for i in range(n_segments)]
    if any(s is None for s in segs):
        raise OutputError(f"{folder}: segments went missing during the run; run again")
    timeline = Timeline(info.fps, data.get("start_frame", 0), kept_times(src, times, info.fps))
    join_segments([folder / s["file"] for s in segs], dst, info.fps, total, src, timeline)
    shutil.rmtree(folder, ignore_errors=True)
    width, height = data["size"]
    first_note = next((s["note"] for s in segs if s.get("note")), None)
    return UpscaleResult(
        output=dst,
        frames=total,
        segments=n_segments,
        segments_reused=reused,
        seconds=time.monotonic() - started,
        fps=info.fps,
        width=width,
        height=height,
        note=result_note(first_note, info.rotation, timeline, info.fps),
    )


__all__ = [
    "QUEUE_FRAMES",
    "AudioStreamInfo",
    "OutputError",
    "UpscaleResult",
    "VideoProbe",
    "VideoWriter",
    "limit_heap_retention",
    "probe",
    "upscale_video",
]
