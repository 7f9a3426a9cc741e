"""Batch upscaling across processes: a model any worker can load, long videos cut into parts.

The ``batch-upscale`` flow can run its tasks on a Dask cluster, where every task runs in
another process (maybe on another machine). This module is what that needs, free of Prefect
and Dask:

* :class:`ModelRef` names the model the flow resolved (a pinned registry version or a file,
  plus the stores to load it from), and :func:`upscaler_for` loads it once per process. A
  Keras model is neither picklable nor small, so it never travels with a task.
* :func:`prepare_video` cuts a long video at keyframes into :class:`Part` s, using packet
  timestamps only (no decoding). :func:`upscale_part` seeks to its keyframe, decodes just its
  range, upscales and encodes it; :func:`stitch` joins the parts by remuxing and adds the
  source audio, through the same :mod:`videoboost.video.segments` as :func:`videoboost.video.pipeline.upscale_video`: the output
  has the source's exact frame count, frame rate (or frame times) and audio.

Everything a part writes goes to a work folder beside the output (``.<name>.fanout``), so the
output folder must be shared by all workers. A rerun skips parts already finished.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from videoboost.config import EngineConfig
from videoboost.errors import ModelNotFound, VideoBoostError

log = logging.getLogger(__name__)

# Bump when the part layout or sidecar meaning changes: old work folders are then ignored.
_PLAN_VERSION = 1


class ClusterUnavailable(VideoBoostError):
    """The Dask scheduler cannot be reached."""

    exit_code = 5


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ModelRef:
    """A model every worker can load the same way.

    Attributes:
        uri: ``models:/videoboost-generator/<version>`` (pinned, never an alias: a promotion
            during the batch must not mix two models) or an absolute ``.keras``/``.h5`` path.
        scale: the model's factor.
        identity: :func:`videoboost.batch.jobs.model_identity`; a worker whose file differs refuses.
        tracking_uri, registry_uri: the MLflow stores the flow used (None: the worker's own).
    """

    uri: str
    scale: int
    identity: str
    tracking_uri: str | None = None
    registry_uri: str | None = None

    @classmethod
    def from_info(cls, info: dict[str, Any], model_name: str) -> ModelRef:
        """From :func:`videoboost.mlops.tracking.load_generator`'s info, pinned and made
        absolute; ``model_name`` is the registered model a version number belongs to."""
        from videoboost import state
        from videoboost.batch.jobs import model_identity

        uri = str(info["uri"])
        if info.get("version"):
            uri = f"models:/{model_name}/{info['version']}"
        elif Path(uri).exists():
            uri = str(Path(uri).resolve())  # workers need not share the flow's cwd
        return cls(
            uri=uri,
            scale=int(info["scale"]),
            identity=model_identity({**info, "uri": uri}),
            tracking_uri=state.tracking_uri(),
            registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or None,
        )


_UPSCALERS: dict[tuple[ModelRef, EngineConfig], Any] = {}
_LOCK = threading.Lock()


def remember(ref: ModelRef, engine: EngineConfig, upscaler) -> None:
    """Register an already loaded upscaler, so tasks in this process reuse it."""
    with _LOCK:
        _UPSCALERS[ref, engine] = upscaler


def upscaler_for(ref: ModelRef, engine: EngineConfig, load_generator: Callable):
    """The :class:`videoboost.inference.engine.Upscaler` of ``ref``, loaded once per process.

    ``load_generator`` is :func:`videoboost.mlops.tracking.load_generator` (passed in by the
    flow: the fan-out itself stays below the MLflow edge).

    Raises:
        ModelNotFound: the model is not there for this process (a file that differs from the
            one the flow resolved, or a store this worker cannot reach).
    """
    with _LOCK:  # one load per process even when several task threads ask at once
        upscaler = _UPSCALERS.get((ref, engine))
        if upscaler is None:
            upscaler = _load(ref, engine, load_generator)
            _UPSCALERS[ref, engine] = upscaler
    return upscaler


def _load(ref: ModelRef, engine: EngineConfig, load_generator: Callable):
    from videoboost.batch.jobs import model_identity
    from videoboost.inference.engine import Upscaler, infer_window, keras_predict

    # load_generator reads the stores from the environment; in a worker process that is
    # the worker's own, so point it at the flow's.
    if ref.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = ref.tracking_uri
    if ref.registry_uri:
        os.environ["MLFLOW_REGISTRY_URI"] = ref.registry_uri
    if not ref.uri.startswith(("models:/", "runs:/")):
        found = model_identity({"uri": ref.uri, "version": None})
        if found != ref.identity:
            raise ModelNotFound(
                f"model file {ref.uri} on this worker is not the one the flow resolved "
                f"({found} vs {ref.identity}); give workers the same file (a shared folder)"
            )
    generator, info = load_generator(ref.uri)
    if int(info["scale"]) != ref.scale:
        raise ModelNotFound(f"{ref.uri} upscales x{info['scale']} here, x{ref.scale} in the flow")
    return Upscaler(keras_predict(generator), ref.scale, engine, window=infer_window(generator))


def job_key(ref: ModelRef, engine: EngineConfig, height: int | None) -> str:
    """What else decides a video's output besides its source (as in ``upscale_jobs``)."""
    return (
        f"model={ref.identity};scale={ref.scale};tile={engine.tile};overlap={engine.overlap};"
        f"height={height};pp=None"
    )


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Part:
    """Frames ``[start_pts, end_pts)`` of a video (stream time base; None = open end).

    ``seek_dts`` is the decode time of the keyframe the part starts at (None: from the start).
    ``frames`` is how many frames the part holds, counted from the packets.

    A window model also needs the ``before`` frames just before the part and the ``after``
    frames just after it (its neighbours in the next parts) as context, so the part's output
    does not depend on where it was cut: decoding then runs from ``decode_start_pts`` (seeking
    to the keyframe at ``decode_seek_dts``) to ``decode_end_pts`` (None = the end).
    """

    index: int
    start_pts: int | None
    end_pts: int | None
    seek_dts: int | None
    frames: int
    before: int = 0
    after: int = 0
    decode_start_pts: int | None = None
    decode_seek_dts: int | None = None
    decode_end_pts: int | None = None

    @property
    def decode_range(self) -> tuple[int | None, int | None, int | None]:
        """``(first pts, seek dts, end pts)`` of what the part decodes, context included."""
        if self.before:
            start, seek = self.decode_start_pts, self.decode_seek_dts
        else:
            start, seek = self.start_pts, self.seek_dts
        return start, seek, self.decode_end_pts if self.after else self.end_pts


@dataclass(frozen=True)
class VideoPlan:
    """A video cut into parts, and where they are written."""

    src: Path
    dst: Path
    fps: Fraction
    parts: tuple[Part, ...]
    key: str
    workdir: Path
    crf: int
    preset: str

    @property
    def frames(self) -> int:
        return sum(p.frames for p in self.parts)

    def part_file(self, part: Part) -> Path:
        return self.workdir / f"part-{part.index:05d}.mp4"

    def sidecar(self, part: Part) -> Path:
        return self.workdir / f"part-{part.index:05d}.json"


def keyframe_parts(src: str | Path, split_frames: int, context: int = 0) -> tuple[Part, ...] | None:
    """Cut ``src`` at keyframes into parts of at least ``split_frames`` frames.

    ``context``: frames each part also decodes on either side (a window model's ``k``; see
    :class:`Part`).

    Only packet timestamps are read. Returns None, and the video goes whole to one task, when
    it is not longer than ``split_frames``, has no keyframe late enough to cut at, or is
    anything but plain: a packet without a timestamp, repeated timestamps, packets the
    demuxer marks as discarded (edit lists), fewer packets than the container declares
    (truncated: the whole-video path reports that), or a file that does not open.
    """
    import av

    from videoboost.video.read import open_input

    try:
        with open_input(Path(src)) as container:
            stream = container.streams.video[0]
            declared = int(stream.frames or 0)
            packets = [
                (p.pts, p.dts, p.is_keyframe, p.is_discard)
                for p in container.demux(stream)
                if p.size  # the demuxer's empty flush packet
            ]
    except (VideoBoostError, av.FFmpegError, OSError):
        return None
    n = len(packets)
    if n <= split_frames or (declared and n < declared):
        return None
    if any(pts is None or dts is None or discard for pts, dts, _, discard in packets):
        return None
    order = sorted(pts for pts, _, _, _ in packets)  # presentation order
    if any(b <= a for a, b in itertools.pairwise(order)):
        return None
    seek = {pts: dts for pts, dts, key, _ in packets if key}  # keyframe pts -> its dts
    # Closed GOPs: every frame shown at or after a keyframe is decodable from it. (An open
    # GOP's leading frames belong to the part before, which decodes on past its end.)
    cuts = [0]
    for i, pts in enumerate(order):
        if pts in seek and i - cuts[-1] >= split_frames and n - i >= max(1, split_frames // 2):
            cuts.append(i)
    if len(cuts) < 2:
        return None
    bounds = [*cuts, n]
    keys = [i for i, pts in enumerate(order) if pts in seek]  # keyframes, presentation order

    def seek_for(i: int) -> int | None:
        """The dts of the last keyframe shown at or before frame ``i`` (None: the start)."""
        j = max((k for k in keys if k <= i), default=0)
        return seek[order[j]] if j else None

    parts = []
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        before, after = min(context, a), min(context, n - b)
        parts.append(
            Part(
                index=k,
                start_pts=order[a] if k else None,
                end_pts=order[b] if b < n else None,
                seek_dts=seek[order[a]] if k else None,
                frames=b - a,
                before=before,
                after=after,
                decode_start_pts=order[a - before] if before else None,
                decode_seek_dts=seek_for(a - before) if before else None,
                decode_end_pts=order[b + after] if b + after < n else None,
            )
        )
    return tuple(parts)


def prepare_video(
    src: str | Path,
    dst: str | Path,
    *,
    split_frames: int,
    job_key: str,
    crf: int = 18,
    preset: str = "superfast",
    context: int = 0,
) -> VideoPlan | None:
    """Plan ``src`` -> ``dst`` in parts and ready the work folder; None: do it in one piece.

    ``context``: frames of context each part decodes beyond its ends (the upscaler's
    ``window``: a video-tier model's ``k``; 0 for a single-frame model).

    The work folder ``.<dst name>.fanout`` beside ``dst`` keeps finished parts across runs
    with the same source, model, settings and cuts; anything else there is cleared.
    Before any frame is processed the output is checked the way ``upscale_video`` checks it:
    the folder is writable and the container takes every audio stream of the source.

    Raises:
        OutputError: the output folder cannot be written or will not take the source's audio.
    """
    from videoboost.video.read import probe
    from videoboost.video.segments import WorkFolder, work_key
    from videoboost.video.write import check_writable

    src, dst = Path(src), Path(dst)
    parts = keyframe_parts(src, split_frames, context)
    if parts is None:
        return None
    info = probe(src, count_frames=False)
    dst.parent.mkdir(parents=True, exist_ok=True)
    check_writable(dst, src)
    # colour: parts made by the RGB path differ by a level here and there; never mix them.
    plan = dict(job_key=job_key, crf=crf, preset=preset, colour="yuv420-direct")
    if context:  # only then: single-frame work folders keep their keys
        plan["context"] = context
    key = work_key(
        src,
        version=_PLAN_VERSION,
        parts=[[p.start_pts, p.end_pts, p.frames] for p in parts],
        **plan,
    )
    workdir = dst.parent / f".{dst.name}.fanout"
    work = WorkFolder(workdir, key)  # private folder; cleared when the key differs
    work.data.update(src=str(src), job_key=job_key, parts=len(parts))
    work.save()
    return VideoPlan(src, dst, info.fps, parts, key, workdir, crf, preset)


# --------------------------------------------------------------------------- one part


def _decode_part(
    plan: VideoPlan, part: Part, *, seek: bool = True
) -> Iterator[tuple[Any, Any, int]]:
    """Upright RGB frames of ``part`` and its context with exact times, seeking to a keyframe.

    Yields ``(rgb, seconds, where)``: ``where`` is -1 for context before the part, 0 for the
    part's own frames, 1 for context after it. Decoded frames come out in presentation order,
    so decoding ends at the first frame at or after the end of the range; frames before its
    start (decoded from the keyframe on, or an open GOP's leading frames) are dropped.
    """
    import av
    import numpy as np

    from videoboost.errors import SourceError
    from videoboost.video.read import open_input, quarter_turns

    with open_input(plan.src) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start_pts, seek_dts, end_pts = part.decode_range
        if seek and seek_dts is not None:
            # backward: the keyframe at or before; decoding from an earlier one is only slower.
            container.seek(seek_dts, stream=stream, backward=True, any_frame=False)
        turns = None
        first = True
        try:
            for frame in container.decode(stream):
                if start_pts is not None and frame.pts < start_pts:
                    continue
                if end_pts is not None and frame.pts >= end_pts:
                    return
                if first and start_pts is not None and frame.pts != start_pts:
                    if not seek:
                        raise SourceError(
                            f"{plan.src}: frame at {start_pts} is missing when decoding "
                            f"part {part.index}; upscale this video without Dask"
                        )
                    # The seek overshot (an imprecise index): decode from the start instead.
                    log.info("%s: seek overshot for part %d; decoding from the start",
                             plan.src, part.index)  # fmt: skip
                    yield from _decode_part(plan, part, seek=False)
                    return
                first = False
                if turns is None:
                    turns = quarter_turns(plan.src, frame)
                rgb = frame.to_ndarray(format="rgb24")
                if turns:
                    rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                where = 0
                if part.start_pts is not None and frame.pts < part.start_pts:
                    where = -1
                elif part.end_pts is not None and frame.pts >= part.end_pts:
                    where = 1
                yield rgb, frame.pts * Fraction(frame.time_base), where
        except av.FFmpegError as exc:
            raise SourceError(
                f"{plan.src}: decoding part {part.index} failed (corrupt or truncated): {exc}"
            ) from exc


def _split_context(decoded, times: list[Fraction]):
    """``(own frames, before, after)`` of a part's decoded stream (see :func:`_decode_part`).

    ``before`` is read at once (it comes first); the own frames and then ``after`` are read
    lazily from the same stream, so a part is never held whole. ``times`` collects the own
    frames' times as they go by.
    """
    stream = iter(decoded)
    before, first = [], None
    for rgb, seconds, where in stream:
        if where < 0:
            before.append(rgb)
            continue
        first = (rgb, seconds, where)
        break
    tail: list[Any] = []  # the first context frame after, met while reading own frames

    def own():
        item = first
        while item is not None:
            rgb, seconds, where = item
            if where > 0:
                tail.append(rgb)
                return
            times.append(seconds)
            yield rgb
            item = next(stream, None)

    def after():  # the engine reads it only once ``own`` is exhausted
        yield from tail
        for rgb, _, _ in stream:
            yield rgb

    return own(), before, after()


def _read_sidecar(plan: VideoPlan, part: Part) -> dict[str, Any] | None:
    try:
        data = json.loads(plan.sidecar(part).read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != plan.key or not plan.part_file(part).is_file():
        return None
    return data


def upscale_part(
    plan: VideoPlan, part: Part, upscaler, *, height: int | None = None, postprocess=None
) -> dict[str, Any]:
    """Upscale and encode one part to its own MP4 in the work folder (skipped if done).

    Returns:
        ``{"index", "frames", "seconds", "reused"}``.

    Raises:
        SourceError: the part cannot be decoded.
        OutputError: the part decoded to another number of frames than planned.
    """
    from videoboost.heap import limit_heap_retention
    from videoboost.video.pipeline import QUEUE_FRAMES
    from videoboost.video.stages import WriteBehind, read_ahead
    from videoboost.video.write import OutputError, VideoWriter

    started = time.monotonic()
    if _read_sidecar(plan, part) is not None:
        return {"index": part.index, "frames": part.frames, "seconds": 0.0, "reused": True}
    limit_heap_retention()
    times: list[Fraction] = []
    # Decoding, the model and encoding overlap, as in videoio.upscale_video.
    decoded = read_ahead(_decode_part(plan, part), QUEUE_FRAMES, name="decode")
    writer = VideoWriter(plan.part_file(part), plan.fps, crf=plan.crf, preset=plan.preset)
    with (
        contextlib.closing(decoded),
        WriteBehind(writer.write, QUEUE_FRAMES, on_abort=writer.abort, name="encode") as encode,
    ):
        own, before, after = _split_context(decoded, times)
        if len(before) != part.before:
            raise OutputError(
                f"{plan.src}: part {part.index} decoded {len(before)} frames of context before "
                f"it, {part.before} were planned; upscale this video without Dask"
            )
        # planar: frames come as the writer's yuv420p (no RGB round trip), as in upscale_jobs.
        for sr in upscaler.upscale_frames(
            own, height=height, postprocess=postprocess, before=before, after=after, planar=True
        ):
            encode.put(sr)
    with writer:
        if writer.frames_written != part.frames:
            raise OutputError(
                f"{plan.src}: part {part.index} decoded to {writer.frames_written} frames, "
                f"{part.frames} were planned; upscale this video without Dask"
            )
    sidecar = {
        "key": plan.key,
        "frames": writer.frames_written,
        "times": [str(t) for t in times],
        "size": [writer.width, writer.height],
        "note": writer.note,
    }
    tmp = plan.workdir / f".{plan.sidecar(part).name}.{secrets.token_hex(4)}.partial"
    tmp.write_text(json.dumps(sidecar))
    os.replace(tmp, plan.sidecar(part))  # only now is the part finished
    seconds = time.monotonic() - started
    return {"index": part.index, "frames": part.frames, "seconds": seconds, "reused": False}


# --------------------------------------------------------------------------- stitching


def stitch(plan: VideoPlan) -> dict[str, Any]:
    """Join the finished parts into ``plan.dst`` with the source audio; remove the work folder.

    Returns:
        ``{"frames", "parts", "width", "height", "note"}``.

    Raises:
        OutputError: a part is missing or does not fit (run the batch again).
    """
    from videoboost.video.read import probe
    from videoboost.video.segments import (
        Timeline,
        join_segments,
        kept_times,
        result_note,
        start_frame,
    )
    from videoboost.video.write import OutputError

    cars = [_read_sidecar(plan, p) for p in plan.parts]
    missing = [p.index for p, car in zip(plan.parts, cars, strict=True) if car is None]
    if missing:
        raise OutputError(f"{plan.workdir}: parts {missing} are not finished; run the batch again")
    sizes = {tuple(car["size"]) for car in cars}
    if len(sizes) != 1:
        raise OutputError(f"{plan.workdir}: the parts have different sizes {sorted(sizes)}")
    times = [Fraction(t) for car in cars for t in car["times"]]
    total = len(times)
    if total != plan.frames or [c["frames"] for c in cars] != [p.frames for p in plan.parts]:
        raise OutputError(f"{plan.workdir}: the parts hold {total} frames, {plan.frames} planned")
    # As upscale_video: the picture keeps its place relative to the audio, and a variable
    # frame rate keeps the source's frame times.
    first = start_frame(times[0], plan.fps)
    timeline = Timeline(plan.fps, first, kept_times(plan.src, times, plan.fps))
    files = [plan.part_file(p) for p in plan.parts]
    join_segments(files, plan.dst, plan.fps, total, plan.src, timeline)
    shutil.rmtree(plan.workdir, ignore_errors=True)
    first_note = next((c["note"] for c in cars if c.get("note")), None)
    rotation = probe(plan.src, count_frames=False).rotation
    width, height = sizes.pop()
    return {
        "frames": total,
        "parts": len(plan.parts),
        "width": width,
        "height": height,
        "note": result_note(first_note, rotation, timeline, plan.fps),
    }


__all__ = [
    "ClusterUnavailable",
    "ModelRef",
    "Part",
    "VideoPlan",
    "job_key",
    "keyframe_parts",
    "prepare_video",
    "remember",
    "stitch",
    "upscale_part",
    "upscaler_for",
]
