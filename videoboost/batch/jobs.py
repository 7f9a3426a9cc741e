"""Batch upscaling core: map inputs to outputs, run each through the engine, report each.

Shared by ``videoboost upscale`` and the Prefect ``batch-upscale`` flow, so both follow the
same rules: images to PNG, videos to H.264 MP4 with the source's fps, frame count and audio;
resumable video segments; a failing input is reported and the others go on.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videoboost.errors import (
    OutputConflict,
    SourceError,
    VideoBoostError,
    os_error_cause,
    output_error,
)

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)
# Output containers for a single video file; a folder run always writes .mp4.
VIDEO_OUT_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv"})
# UpscaleConfig.preset's values, spelled out so that --help needs no pydantic import.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")


@dataclass(frozen=True)
class Job:
    """One input file and where its result goes."""

    src: Path
    dst: Path
    kind: str  # "image" | "video"


# --------------------------------------------------------------------------- planning


def _kind(path: Path) -> str | None:
    from videoboost.inference.images import IMAGE_SUFFIXES

    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _out_name(src: Path, kind: str) -> str:
    return src.stem + (".png" if kind == "image" else ".mp4")


def plan_jobs(
    inputs: list[str | Path], out: str | Path
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Map inputs to outputs.

    Folder mode (several inputs, a folder input, ``out`` an existing folder, or ``out``
    without a suffix): ``out/<stem>.png`` for images, ``out/<stem>.mp4`` for videos; a folder
    contributes its top-level images and videos, sorted by name (hidden files skipped).
    Otherwise ``out`` is the output file of the single input.

    Returns:
        ``(jobs, problems)``: problems are inputs that cannot be processed (missing, not an
        image or video) with the reason; they are reported, the rest still run.

    Raises:
        SourceError: no input can be processed at all.
        OutputConflict: two inputs map to the same output, or an output is an input.
    """
    out = Path(out)
    problems: list[tuple[Path, str]] = []
    files: list[tuple[Path, str]] = []
    folder_mode = len(inputs) > 1 or out.is_dir() or not out.suffix
    for item in map(Path, inputs):
        if item.is_dir():
            folder_mode = True
            found = []
            for p in sorted(item.iterdir()):
                if p.name.startswith(".") or not p.is_file() or (k := _kind(p)) is None:
                    continue
                if p.is_symlink() and not p.resolve().is_relative_to(item.resolve()):
                    # Only what the paths given hold is read: a link out of the folder is not.
                    problems.append((p, "links outside the folder; skipped (name it to use it)"))
                    continue
                found.append((p, k))
            if not found:
                problems.append((item, "the folder holds no images or videos"))
            files.extend(found)
        elif not item.exists():
            problems.append((item, "no such file"))
        elif (kind := _kind(item)) is None:
            problems.append((item, f"not an image or video (unknown suffix {item.suffix!r})"))
        else:
            files.append((item, kind))
    if not files:
        reasons = "; ".join(f"{p}: {why}" for p, why in problems)
        raise SourceError(f"nothing to upscale: {reasons or 'no input given'}")

    jobs: list[Job] = []
    if folder_mode:
        if out.exists() and not out.is_dir():
            raise OutputConflict(f"{out} is a file; several inputs need an output folder")
        jobs = [Job(src, out / _out_name(src, kind), kind) for src, kind in files]
    else:
        src, kind = files[0]
        suffix = out.suffix.lower()
        if kind == "image" and suffix != ".png":
            raise OutputConflict(
                f"images come out as PNG: name the output {out.with_suffix('.png')}"
            )
        if kind == "video" and suffix not in VIDEO_OUT_SUFFIXES:
            raise OutputConflict(
                f"a video comes out as H.264 in {', '.join(sorted(VIDEO_OUT_SUFFIXES))}: "
                f"name the output {out.with_suffix('.mp4')}"
            )
        jobs = [Job(src, out, kind)]

    seen: dict[Path, Path] = {}
    sources = {job.src.resolve() for job in jobs}
    for job in jobs:
        key = job.dst.resolve()
        if key in sources:
            raise OutputConflict(f"{job.dst} would overwrite an input; choose another output")
        if key in seen:
            raise OutputConflict(
                f"{seen[key]} and {job.src} would both be written to {job.dst}; "
                "upscale them into different folders"
            )
        seen[key] = job.src
    return jobs, problems


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    job: Job
    ok: bool
    message: str
    exit_code: int = 0


def model_identity(info: dict[str, Any]) -> str:
    """What a resumed video job must share with the interrupted one, model-wise."""
    uri = str(info["uri"])
    path = Path(uri)
    if path.exists():
        st = path.stat()
        return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return f"{uri}#{info.get('version')}"


def upscale_jobs(
    jobs: list[Job],
    upscaler,
    *,
    model_id: str,
    height: int | None = None,
    postprocess=None,
    segment_frames: int = 64,
    crf: int = 18,
    preset: str = "superfast",
    progress: bool = True,
    log=print,
) -> list[Outcome]:
    """Upscale every job with ``upscaler``; one failing job does not stop the others.

    ``KeyboardInterrupt`` does stop the run: finished video segments stay in the work folder
    (``.<name>.parts`` beside the output), so the same command continues where it stopped.

    Args:
        jobs: from :func:`plan_jobs`.
        upscaler: a :class:`videoboost.inference.engine.Upscaler`.
        model_id: identifies the model in video job keys (see :func:`model_identity`).
        height, postprocess: as in :meth:`videoboost.inference.engine.Upscaler.upscale_image`.
        segment_frames, crf, preset: video segments and x264 settings.
        progress: show a progress bar (frames, frames/s) on stderr.
        log: where per-file lines go.
    """
    from videoboost.inference.engine import plan_output
    from videoboost.inference.images import read_image, write_png
    from videoboost.progress import LineProgress, progress_bar
    from videoboost.video.pipeline import probe, upscale_video

    cfg = upscaler.config
    window = getattr(upscaler, "window", 0)
    job_key = (
        f"model={model_id};scale={upscaler.scale};tile={cfg.tile};overlap={cfg.overlap};"
        f"height={height};pp={postprocess.model_dump_json() if postprocess else None};"
        # Segments of the RGB path differ by a level here and there: a resume never mixes them.
        "colour=yuv420-direct"
    )
    counts: dict[Path, int] = {}
    for job in jobs:
        if job.kind == "video":
            try:
                counts[job.src] = probe(job.src, count_frames=False).frame_count
            except VideoBoostError:
                counts[job.src] = 0  # reported when the job runs
        else:
            counts[job.src] = 1
    # In a log (not a terminal): a line per file and per finished video segment, not frames.
    bar = progress_bar(
        total=sum(counts.values()) or None,
        desc="upscale",
        unit="frame",
        enabled=progress,
        file=sys.stderr,
        every=math.inf,
        dynamic_ncols=True,
    )
    say = (lambda line: bar.write(line, file=sys.stderr)) if progress else log
    lines = progress and isinstance(bar, LineProgress)
    notes: set[str] = set()

    def note(in_h: int, in_w: int) -> None:
        if height is not None:
            text = plan_output(in_h, in_w, upscaler.scale, height)[2]
            if text not in notes:
                notes.add(text)
                say(f"note: {text}")

    outcomes: list[Outcome] = []
    try:
        for job in jobs:
            bar.set_postfix_str(job.src.name)
            started = time.monotonic()
            try:
                if job.kind == "image":
                    lr = read_image(job.src, max_pixels=cfg.max_input_pixels)
                    note(*lr.shape[:2])
                    sr = upscaler.upscale_image(lr, height=height, postprocess=postprocess)
                    write_png(job.dst, sr)
                    bar.update(1)
                    detail = f"{sr.shape[1]}x{sr.shape[0]}"
                else:
                    info = probe(job.src, count_frames=False)
                    note(info.height, info.width)
                    done = 0

                    def process(frames, before=(), after=(), _bar=bar):
                        nonlocal done
                        for sr in upscaler.upscale_frames(
                            frames,
                            height=height,
                            postprocess=postprocess,
                            before=before,
                            after=after,
                            planar=True,  # the encoder's yuv420p, made in one step
                        ):
                            done += 1
                            _bar.update(1)
                            yield sr

                    result = upscale_video(
                        job.src,
                        job.dst,
                        process,
                        segment_frames=segment_frames,
                        # A video-tier model sees k neighbours a side, across segment ends too.
                        context=window,
                        job_key=job_key,
                        crf=crf,
                        preset=preset,
                        progress=(
                            (lambda n, total, name=job.src.name: say(f"{name}: {n}/{total} frames"))
                            if lines
                            else None
                        ),
                    )
                    bar.update(max(0, counts[job.src] - done))  # frames of reused segments
                    detail = f"{result.width}x{result.height}, {result.frames} frames"
                    if result.segments_reused:
                        detail += (
                            f", resumed: {result.segments_reused} of {result.segments} "
                            "segments were already done"
                        )
                    if result.note:
                        detail += f"; {result.note}"
                seconds = time.monotonic() - started
                message = f"{detail}, {seconds:.1f} s"
                if job.kind != "image" and done and seconds > 0:
                    # Frames upscaled in this run (not those of reused segments), end to end.
                    message += f", {done / seconds:.1f} frames/s"
                outcomes.append(Outcome(job, True, message))
                say(f"{job.src} -> {job.dst} ({outcomes[-1].message})")
            except Exception as exc:  # one bad input must not stop a batch
                if not isinstance(exc, SourceError) and (cause := os_error_cause(exc)):
                    exc = output_error(cause, job.dst)  # disk full, read-only, file in the way
                code = exc.exit_code if isinstance(exc, VideoBoostError) else 1
                text = (
                    str(exc) if isinstance(exc, VideoBoostError) else f"{type(exc).__name__}: {exc}"
                )
                outcomes.append(Outcome(job, False, text, code))
                say(f"FAILED {job.src}: {text}")
    finally:
        bar.close()
    return outcomes
