"""Resumable video segments: the public pieces that whole-video jobs and fanned-out parts share.

A long video is encoded as a run of independent H.264 files (segments, or parts on other
workers), each starting with an IDR frame, and joined at the end by remuxing (no second
encode). :func:`videoboost.video.pipeline.upscale_video` (one process, consecutive segments) and
:mod:`videoboost.batch.fanout` (parts cut at keyframes, on Dask workers) both build on these:

* :func:`work_key` names the work: the source's identity plus everything that shapes the output;
* :class:`WorkFolder` keeps finished segments under that key across runs (even ``kill -9``);
* :class:`Timeline` and :func:`kept_times` decide the output timestamps: the source's exact
  constant rate, or every frame's source time for a variable-rate source;
* :func:`join_segments` remuxes the segments into the destination with the source's audio,
  atomically, and :func:`result_note` says what a user should know about the result.

Variable frame rate: frame ``i`` of the output is shown at the time frame ``i`` of the source
was (its timestamps are kept), so the picture stays in sync with the untouched audio all
along; a constant-rate source keeps its exact rate.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from videoboost.video.write import AtomicOutput, OutputError

log = logging.getLogger(__name__)


def work_key(src: Path, **plan: Any) -> str:
    """The key of resumable work on ``src``: the source's identity (path, size, mtime) and the
    ``plan`` that shapes the output (format version, model key, segmenting, encoder settings).
    Work saved under another key is never reused."""
    st = src.stat()
    ident = {"src": str(src.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, **plan}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


class WorkFolder:
    """A private work folder of finished segments and its ``manifest.json``.

    The folder is ``0o700``; a folder left by another job (another key) is cleared, so its
    segments never leak into this output. ``data`` is the manifest: ``{"key", "segments":
    {"<i>": {"file", "frames", "note"}}, ...}`` plus whatever the job records; :meth:`save`
    rewrites it atomically, and a segment counts as finished only once it is saved there.
    """

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


class Timeline:
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


def kept_times(path: Path, times: Sequence[Fraction | None], fps: Fraction) -> list | None:
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


def join_segments(
    files: Sequence[Path],
    dst: Path,
    fps: Fraction,
    total: int,
    audio_from: Path,
    timeline: Timeline,
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
    out = AtomicOutput(dst)
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


def start_frame(first_time: Fraction | None, fps: Fraction) -> int:
    """Where the first picture goes on the output's frame grid, so that it keeps its place
    relative to the audio (a source whose video starts late keeps that delay)."""
    return max(0, round((first_time or 0) * fps))


def result_note(
    segment_note: str | None, rotation: int, timeline: Timeline, fps: Fraction
) -> str | None:
    """What a user should know about a joined output: the segments' own note (odd-size
    padding), a rotation turned upright, kept variable frame times; None when nothing."""
    notes = [segment_note]
    if rotation:
        notes.append(
            f"turned upright by the source's rotation metadata ({rotation} degrees); "
            "the output has none"
        )
    if timeline.variable:
        notes.append(f"variable frame rate: the source's frame times are kept (~{fps} fps)")
    return "; ".join(n for n in notes if n) or None


__all__ = [
    "Timeline",
    "WorkFolder",
    "join_segments",
    "kept_times",
    "result_note",
    "start_frame",
    "work_key",
]
