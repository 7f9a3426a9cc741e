"""``videoboost upscale``, ``videoboost export`` and ``videoboost bento``: using a trained model.

* ``upscale INPUT... -o OUT``: images and videos, files or folders. A folder in (or several
  inputs) gives a folder out with the same file names; images come out as PNG, videos as
  H.264 MP4 with the source's frame rate, frame count and audio. Video jobs are resumable: a
  rerun with the same arguments continues from the last finished segment. Outputs appear only
  when complete (temp file, then rename). A failing input is reported and the others go on;
  the exit code is non-zero if any failed.
* ``export [MODEL] --format keras|h5|savedmodel|openvino -o PATH``: a standalone copy of a model.
* ``bento import|build [MODEL]``: the model into the BentoML store, and the bento around it.

Module-level imports stay light (``videoboost --help`` must not load TensorFlow).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from videoboost.batch.jobs import X264_PRESETS, model_identity, plan_jobs, upscale_jobs
from videoboost.errors import SourceError, VideoBoostError
from videoboost.inference.export import EXPORT_SUFFIXES, export_model

# Spelled out, not imported: `videoboost --help` must not import the engine (numpy, OpenCV).
RUNTIME_CHOICES = ("auto", "tf-f32", "tf-bf16", "ov-f32", "ov-bf16", "ov-int8")


def _postprocess_from_args(args: argparse.Namespace):
    from pydantic import ValidationError

    from videoboost.inference.engine import PostProcess

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


def _model_input_size(jobs, tile: int) -> tuple[int, int]:
    """(width, height) of what the model will be given: the first readable input's frame, or
    a tile of it; 320x180 when none can be read (they will fail later with their own message)."""
    from PIL import Image

    from videoboost.video.read import probe

    for job in jobs:
        try:
            if job.kind == "image":
                with Image.open(job.src) as img:
                    w, h = img.size
            else:
                info = probe(job.src, count_frames=False)
                w, h = info.width, info.height
        except Exception:
            continue
        if tile and max(w, h) > tile:
            w, h = min(w, tile), min(h, tile)
        return w, h
    return 320, 180


def _refused_at_build(version: str | None) -> dict[str, str]:
    """Runtimes the registry version's benchmark check (``bento build``) ruled out."""
    if version is None:
        return {}
    from videoboost.evaluation.runtime_select import refused_by_tag
    from videoboost.mlops import tracking

    try:
        mv = tracking._mlflow().MlflowClient().get_model_version(tracking.MODEL_NAME, version)
    except Exception:  # the model loaded; a tag that cannot be read only costs the check
        return {}
    return refused_by_tag((mv.tags or {}).get("runtime_fidelity"))


def cmd_upscale(args: argparse.Namespace) -> int:
    from videoboost.config import UpscaleConfig
    from videoboost.evaluation.runtime_select import model_key, select
    from videoboost.inference.engine import Upscaler, infer_window, set_tf_threads
    from videoboost.mlops.tracking import load_generator

    postprocess = _postprocess_from_args(args)
    try:
        jobs, problems = plan_jobs(args.inputs, args.output)
    except OSError as exc:  # e.g. an input folder that cannot be listed
        raise SourceError(
            f"{exc.filename or args.inputs[0]}: {exc.strerror or exc}; check the path and its "
            "permissions"
        ) from None
    defaults = UpscaleConfig()
    tile = defaults.tile if args.tile is None else args.tile
    if 0 < tile <= defaults.overlap:
        raise VideoBoostError(f"--tile {tile} must be 0 (no tiling) or above {defaults.overlap}")
    cfg = defaults.model_copy(update={"tile": tile, "batch": args.batch or defaults.batch})

    runtime = args.runtime or os.environ.get("VIDEOBOOST_RUNTIME") or cfg.runtime
    if runtime not in RUNTIME_CHOICES:
        raise VideoBoostError(f"--runtime {runtime}: choose one of {', '.join(RUNTIME_CHOICES)}")
    set_tf_threads(args.threads)
    generator, info = load_generator(args.model)
    if args.scale is not None and args.scale != info["scale"]:
        raise VideoBoostError(
            f"--scale {args.scale}: the model ({info['uri']}) upscales x{info['scale']}; leave "
            f"--scale out, pass a x{args.scale} model with --model, or ask for a size with --height"
        )
    version = f" version {info['version']}" if info.get("version") else ""
    print(f"model {info['uri']}{version} (x{info['scale']}); {len(jobs)} input(s)", file=sys.stderr)
    choice = select(
        generator,
        size=_model_input_size(jobs, cfg.tile),
        runtime=runtime,
        threads=args.threads,
        refused=_refused_at_build(info.get("version")) if runtime == "auto" else None,
        model=f"{model_identity(info)}#{model_key(generator)}",
    )
    print(choice.line(), file=sys.stderr)
    upscaler = Upscaler(choice.predict, info["scale"], cfg.engine(), window=infer_window(generator))
    if upscaler.window:  # a still is upscaled as a repeated frame: say so once
        print(f"mode: {upscaler.mode}", file=sys.stderr)
    # A resumed video must not mix segments of two runtimes: their pixels differ slightly.
    model_id = model_identity(info)
    if choice.name != "tf-f32":
        model_id = f"{model_id}|{choice.name}"
    for path, why in problems:
        print(f"FAILED {path}: {why}", file=sys.stderr)
    outcomes = upscale_jobs(
        jobs,
        upscaler,
        model_id=model_id,
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


def cmd_export(args: argparse.Namespace) -> int:
    from videoboost.mlops.tracking import load_generator

    generator, info = load_generator(args.model)
    path = export_model(generator, args.format, args.output, force=args.force)
    version = f" version {info['version']}" if info.get("version") else ""
    print(f"exported {info['uri']}{version} (x{info['scale']}) as {args.format}: {path}")
    return 0


# --------------------------------------------------------------------------- bento


def cmd_bento_import(args: argparse.Namespace) -> int:
    from videoboost.mlops.serving import import_model

    model = import_model(args.model)
    print(f"BentoML model {model.tag}")
    for key, value in sorted(model.info.labels.items()):
        print(f"  {key}: {value}")
    return 0


def cmd_bento_build(args: argparse.Namespace) -> int:
    from videoboost.mlops.serving import build_bento

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
                   help="x264 speed/size trade-off (default superfast)")  # fmt: skip
    u.add_argument("--threads", type=int, default=None, help="TF threads (default: all cores)")
    u.add_argument("--runtime", default=None, choices=RUNTIME_CHOICES,
                   help="inference runtime; auto (default, or $VIDEOBOOST_RUNTIME) times every "
                   "one this CPU supports and keeps the fastest that agrees with tf-f32; "
                   "the choice is cached per model, CPU and frame size")  # fmt: skip
    u.add_argument("--quiet", action="store_true", help="no progress bar")
    u.set_defaults(func=cmd_upscale)

    e = sub.add_parser(
        "export", help="save a model as .keras, .h5, a TF SavedModel or an OpenVINO IR folder"
    )
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
