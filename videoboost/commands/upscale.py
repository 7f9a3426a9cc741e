"""``videoboost upscale``, ``videoboost export`` and ``videoboost bento``: using a trained model.

* ``upscale INPUT... -o OUT``: images and videos, files or folders. A folder in (or several
  inputs) gives a folder out with the same file names; images come out as PNG, videos as
  H.264 MP4 with the source's frame rate, frame count and audio. Video jobs are resumable: a
  rerun with the same arguments continues from the last finished segment. Outputs appear only
  when complete (temp file, then rename). A failing input is reported and the others go on;
  the exit code is non-zero if any failed.
* ``export [MODEL] --format keras|h5|savedmodel -o PATH``: a standalone copy of a model.
* ``bento import|build [MODEL]``: the model into the BentoML store, and the bento around it.

Module-level imports stay light (``videoboost --help`` must not load TensorFlow).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videoboost.errors import SourceError, VideoBoostError

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)
# Output containers for a single video file; a folder run always writes .mp4.
VIDEO_OUT_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv"})
EXPORT_SUFFIXES = {"keras": ".keras", "h5": ".h5", "savedmodel": ""}
# UpscaleConfig.preset's values, spelled out so that --help needs no pydantic import.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")


class OutputConflict(VideoBoostError):
    """The outputs asked for would overwrite an input or each other."""

    exit_code = 2


@dataclass(frozen=True)
class Job:
    """One input file and where its result goes."""

    src: Path
    dst: Path
    kind: str  # "image" | "video"


# --------------------------------------------------------------------------- planning


def _kind(path: Path) -> str | None:
    from videoboost.images import IMAGE_SUFFIXES

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
            found = [
                (p, k)
                for p in sorted(item.iterdir())
                if p.is_file() and not p.name.startswith(".") and (k := _kind(p)) is not None
            ]
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
    preset: str = "medium",
    progress: bool = True,
    log=print,
) -> list[Outcome]:
    """Upscale every job with ``upscaler``; one failing job does not stop the others.

    ``KeyboardInterrupt`` does stop the run: finished video segments stay in the work folder
    (``.<name>.parts`` beside the output), so the same command continues where it stopped.

    Args:
        jobs: from :func:`plan_jobs`.
        upscaler: a :class:`videoboost.engine.Upscaler`.
        model_id: identifies the model in video job keys (see :func:`model_identity`).
        height, postprocess: as in :meth:`videoboost.engine.Upscaler.upscale_image`.
        segment_frames, crf, preset: video segments and x264 settings.
        progress: show a progress bar (frames, frames/s) on stderr.
        log: where per-file lines go.
    """
    from tqdm import tqdm

    from videoboost.engine import plan_output
    from videoboost.images import read_image, write_png
    from videoboost.videoio import probe, upscale_video

    cfg = upscaler.config
    job_key = (
        f"model={model_id};scale={upscaler.scale};tile={cfg.tile};overlap={cfg.overlap};"
        f"height={height};pp={postprocess.model_dump_json() if postprocess else None}"
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
    bar = tqdm(
        total=sum(counts.values()) or None,
        unit="frame",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    say = (lambda line: bar.write(line, file=sys.stderr)) if progress else log
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

                    def process(frames, _bar=bar):
                        nonlocal done
                        for sr in upscaler.upscale_frames(
                            frames, height=height, postprocess=postprocess
                        ):
                            done += 1
                            _bar.update(1)
                            yield sr

                    result = upscale_video(
                        job.src,
                        job.dst,
                        process,
                        segment_frames=segment_frames,
                        job_key=job_key,
                        crf=crf,
                        preset=preset,
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
                outcomes.append(Outcome(job, True, f"{detail}, {seconds:.1f} s"))
                say(f"{job.src} -> {job.dst} ({outcomes[-1].message})")
            except Exception as exc:  # one bad input must not stop a batch
                code = exc.exit_code if isinstance(exc, VideoBoostError) else 1
                text = (
                    str(exc) if isinstance(exc, VideoBoostError) else f"{type(exc).__name__}: {exc}"
                )
                outcomes.append(Outcome(job, False, text, code))
                say(f"FAILED {job.src}: {text}")
    finally:
        bar.close()
    return outcomes


def _postprocess_from_args(args: argparse.Namespace):
    from pydantic import ValidationError

    from videoboost.engine import PostProcess

    try:
        pp = PostProcess(
            contrast=args.contrast,
            brightness=args.brightness,
            unsharp_amount=args.unsharp,
            unsharp_radius=args.unsharp_radius,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise VideoBoostError(
            f"--{first['loc'][0].replace('_amount', '').replace('_', '-')}: {first['msg']}"
        ) from None
    return None if pp.is_identity else pp


def cmd_upscale(args: argparse.Namespace) -> int:
    from videoboost.config import UpscaleConfig
    from videoboost.engine import Upscaler, keras_predict, set_tf_threads
    from videoboost.tracking import load_generator

    postprocess = _postprocess_from_args(args)
    jobs, problems = plan_jobs(args.inputs, args.output)
    defaults = UpscaleConfig()
    tile = defaults.tile if args.tile is None else args.tile
    if 0 < tile <= defaults.overlap:
        raise VideoBoostError(f"--tile {tile} must be 0 (no tiling) or above {defaults.overlap}")
    cfg = defaults.model_copy(update={"tile": tile, "batch": args.batch or defaults.batch})

    set_tf_threads(args.threads)
    generator, info = load_generator(args.model)
    if args.scale is not None and args.scale != info["scale"]:
        raise VideoBoostError(
            f"--scale {args.scale}: the model ({info['uri']}) upscales x{info['scale']}; leave "
            f"--scale out, pass a x{args.scale} model with --model, or ask for a size with --height"
        )
    upscaler = Upscaler(keras_predict(generator), info["scale"], cfg.engine())
    version = f" version {info['version']}" if info.get("version") else ""
    print(f"model {info['uri']}{version} (x{info['scale']}); {len(jobs)} input(s)", file=sys.stderr)
    for path, why in problems:
        print(f"FAILED {path}: {why}", file=sys.stderr)
    outcomes = upscale_jobs(
        jobs,
        upscaler,
        model_id=model_identity(info),
        height=args.height,
        postprocess=postprocess,
        segment_frames=args.segment_frames or cfg.segment_frames,
        crf=cfg.crf if args.crf is None else args.crf,
        preset=args.preset or cfg.preset,
        progress=not args.quiet,
        log=lambda line: print(line, file=sys.stderr),
    )
    failed = [o for o in outcomes if not o.ok]
    total = len(outcomes) + len(problems)
    if failed or problems:
        print(
            f"{len(failed) + len(problems)} of {total} input(s) failed; the others were written",
            file=sys.stderr,
        )
        return failed[0].exit_code if failed else SourceError.exit_code
    print(f"done: {len(outcomes)} output(s) in {Path(args.output)}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- export


def export_model(generator, fmt: str, path: str | Path, *, force: bool = False) -> Path:
    """Save ``generator`` standalone: ``keras`` (native), ``h5`` (legacy HDF5, the original
    VideoBoost's format) or ``savedmodel`` (a TF SavedModel folder for TF Serving, signature
    ``serve``). Written to a temp name beside ``path`` and renamed when complete.

    The ``.keras`` and ``.h5`` files need ``models.layers`` imported to load (the
    ``PixelShuffle`` layer); the SavedModel needs nothing but TensorFlow.
    """
    import secrets
    import shutil

    if fmt not in EXPORT_SUFFIXES:
        raise VideoBoostError(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_SUFFIXES)}")
    path = Path(path)
    want = EXPORT_SUFFIXES[fmt]
    if want and path.suffix.lower() != want:
        if path.suffix:
            raise VideoBoostError(
                f"--format {fmt} writes a {want} file; name it {path.with_suffix(want)}"
            )
        path = path.with_suffix(want)
    if path.exists() and not force:
        raise OutputConflict(f"{path} exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{want}")
    try:
        if fmt == "savedmodel":
            _open_shape_clone(generator).export(str(tmp), format="tf_saved_model", verbose=False)
        else:
            generator.save(str(tmp))
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return path


def _open_shape_clone(generator):
    """``generator`` with its interpolating ``UpSampling2D`` layers swapped for a plain
    ``tf.image.resize`` on the runtime shape (same op, same numbers, shared weights).

    Keras 3.15's ``UpSampling2D(interpolation="bicubic")`` cannot be traced with open height
    and width (it tests a symbolic size as a Python bool), and a SavedModel for TF Serving
    must accept any frame size.
    """
    import keras
    import tensorflow as tf

    class OpenShapeResize(keras.layers.Layer):
        def __init__(self, factor: tuple[int, int], method: str, **kwargs):
            super().__init__(**kwargs)
            self.factor, self.method = factor, method

        def call(self, x):
            size = tf.shape(x)[1:3] * tf.constant(self.factor, tf.int32)
            return tf.cast(tf.image.resize(x, size, method=self.method), x.dtype)

    def clone(layer):
        if isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation != "nearest":
            if layer.data_format != "channels_last":
                raise VideoBoostError(f"{layer.name}: only channels_last models can be exported")
            return OpenShapeResize(tuple(layer.size), layer.interpolation, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(generator, clone_function=clone)
    copy.set_weights(generator.get_weights())
    return copy


def cmd_export(args: argparse.Namespace) -> int:
    from videoboost.tracking import load_generator

    generator, info = load_generator(args.model)
    path = export_model(generator, args.format, args.output, force=args.force)
    version = f" version {info['version']}" if info.get("version") else ""
    print(f"exported {info['uri']}{version} (x{info['scale']}) as {args.format}: {path}")
    return 0


# --------------------------------------------------------------------------- bento


def cmd_bento_import(args: argparse.Namespace) -> int:
    from videoboost.serving import import_model

    model = import_model(args.model)
    print(f"BentoML model {model.tag}")
    for key, value in sorted(model.info.labels.items()):
        print(f"  {key}: {value}")
    return 0


def cmd_bento_build(args: argparse.Namespace) -> int:
    from videoboost.serving import build_bento

    tag = build_bento(args.model)
    print(tag)
    print(f"serve it with: bentoml serve {tag}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- parser


def register(sub: argparse._SubParsersAction) -> None:
    model_help = (
        "MLflow model URI (models:/videoboost-generator/3, models:/videoboost-generator@champion, "
        "runs:/...) or a .keras/.h5 file; default: the registry's champion"
    )
    u = sub.add_parser(
        "upscale",
        help="upscale images and videos (files or folders) with a trained generator",
        description="Upscale images (to PNG) and videos (to H.264 MP4 with the source's fps, "
        "frame count and audio). Interrupted video jobs resume when rerun with the same "
        "arguments.",
    )
    u.add_argument("inputs", nargs="+", metavar="INPUT", help="image/video files or folders")
    u.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file (one input) or folder (several inputs or a folder)")  # fmt: skip
    u.add_argument("--model", default=None, metavar="URI_OR_PATH", help=model_help)
    u.add_argument("--scale", type=int, default=None,
                   help="expected model factor (checked; the model decides)")  # fmt: skip
    u.add_argument("--tile", type=int, default=None, metavar="N",
                   help="LR tile side for large frames, 0 = never tile (default 512)")  # fmt: skip
    u.add_argument("--batch", type=int, default=None, metavar="N",
                   help="frames or tiles per model call (default 4)")  # fmt: skip
    u.add_argument("--height", type=int, default=None, metavar="H",
                   help="output height, aspect kept; beyond the model's factor the rest is "
                   "Lanczos and the command says so")  # fmt: skip
    pp = u.add_argument_group("post-processing (off by default)")
    pp.add_argument("--contrast", type=float, default=1.0, help="gain around mid-grey")
    pp.add_argument("--brightness", type=float, default=0.0, help="offset in grey levels")
    pp.add_argument("--unsharp", type=float, default=0.0, metavar="AMOUNT",
                    help="unsharp mask amount (0 = off)")  # fmt: skip
    pp.add_argument("--unsharp-radius", type=float, default=1.0, metavar="SIGMA",
                    help="unsharp mask Gaussian sigma in output pixels")  # fmt: skip
    v = u.add_argument_group("video")
    v.add_argument("--segment-frames", type=int, default=None, metavar="N",
                   help="frames per resumable segment (default 64)")  # fmt: skip
    v.add_argument("--crf", type=int, default=None, help="x264 quality 0-51 (default 18)")
    v.add_argument("--preset", default=None, choices=X264_PRESETS,
                   help="x264 speed/size trade-off (default medium)")  # fmt: skip
    u.add_argument("--threads", type=int, default=None, help="TF threads (default: all cores)")
    u.add_argument("--quiet", action="store_true", help="no progress bar")
    u.set_defaults(func=cmd_upscale)

    e = sub.add_parser("export", help="save a model as .keras, .h5 or a TF SavedModel")
    e.add_argument("model", nargs="?", default=None, metavar="MODEL", help=model_help)
    e.add_argument("--format", choices=list(EXPORT_SUFFIXES), default="keras")
    e.add_argument("-o", "--output", required=True, metavar="PATH")
    e.add_argument("--force", action="store_true", help="replace an existing PATH")
    e.set_defaults(func=cmd_export)

    b = sub.add_parser("bento", help="the model into the BentoML store; the bento").add_subparsers(
        dest="bento_command", required=True
    )
    bi = b.add_parser("import", help="import a model (default: the champion) into BentoML")
    bi.add_argument("model", nargs="?", default=None, metavar="MODEL", help=model_help)
    bi.set_defaults(func=cmd_bento_import)
    bb = b.add_parser("build", help="import the model and run `bentoml build`; prints the tag")
    bb.add_argument("model", nargs="?", default=None, metavar="MODEL", help=model_help)
    bb.set_defaults(func=cmd_bento_build)
