"""``videoboost`` command line. Each subcommand imports only what it needs (TF, MLflow and GX
are slow to import), and every user-facing failure is one line on stderr with a non-zero code.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from videoboost.state import configure_environment

# Subcommand modules outside this file, each with ``register(subparsers)``. Imports must stay
# light (no TF/MLflow at module level) so ``videoboost --help`` is instant.
COMMAND_MODULES: tuple[str, ...] = (
    "videoboost.cli.evaluate",
    "videoboost.cli.upscale",
)


# The corpus's default cap of frames per video: its clips run from 41 to 1323 frames beside 197
# stills, and about 60 frames spread over a clip cover its scenes without letting it swamp them.
CORPUS_CLIP_FRAMES = 60


def _add_dataset_options(p: argparse.ArgumentParser, clip_frames: int | None = None) -> None:
    p.add_argument("--scale", type=int, default=4, choices=[2, 3, 4, 5])
    p.add_argument(
        "--min-side", type=int, default=32, help="skip frames whose LR side is shorter (px)"
    )
    p.add_argument("--every", type=int, default=1, help="keep every k-th frame")
    p.add_argument(
        "--max-frames", type=int, default=None, help="cap of frames per source (its first ones)"
    )
    p.add_argument(
        "--max-frames-per-clip",
        type=int,
        default=clip_frames,
        help="cap of frames per video, spread evenly over its length (of the every-k frames)"
        + (f"; default {clip_frames}, 0 = no cap" if clip_frames else "; default: no cap"),
    )
    p.add_argument(
        "--dedupe", type=float, default=1.0, help="near-duplicate threshold (0 = keep all)"
    )
    p.add_argument(
        "--profile",
        choices=["real", "clean"],
        default="real",
        help="real (default): the clean LR plus --variants codec-damaged LR variants per frame "
        "(blur, shrink kernel, noise, JPEG, H.264), drawn per training crop; clean: only the "
        "fixed degradation below",
    )
    p.add_argument("--variants", type=int, default=None, help="LR variants per frame (real: 6)")
    p.add_argument(
        "--window",
        type=int,
        default=0,
        choices=[0, 1, 2],
        help="also store each frame's k neighbours a side for the video tier (videos: adjacent "
        "frames; stills: synthetic camera motion); 0 = off",
    )
    p.add_argument("--degrade", choices=["bicubic", "area"], default="bicubic")
    p.add_argument("--blur", type=float, default=0.0, help="Gaussian blur sigma (HR px)")
    p.add_argument("--noise", type=float, default=0.0, help="Gaussian noise sigma (grey levels)")
    p.add_argument("--jpeg", type=int, default=None, help="JPEG re-compression quality")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)


def dataset_config_from_args(args: argparse.Namespace):
    from videoboost.config import DatasetConfig, DegradeConfig, RealDegradeConfig, SamplingConfig

    real = RealDegradeConfig()
    if getattr(args, "variants", None) is not None:
        real = RealDegradeConfig(variants=args.variants)
    return DatasetConfig(
        degrade=DegradeConfig(
            profile=getattr(args, "profile", "real"),
            real=real,
            scale=args.scale,
            method=args.degrade,
            blur_sigma=args.blur,
            noise_sigma=args.noise,
            jpeg_quality=args.jpeg,
            seed=args.seed,
        ),
        sampling=SamplingConfig(
            every=args.every,
            max_frames=args.max_frames,
            max_frames_per_clip=getattr(args, "max_frames_per_clip", None) or None,
            dedupe_threshold=args.dedupe,
        ),
        min_lr_side=args.min_side,
        window=getattr(args, "window", 0),
        val_fraction=args.val_fraction,
        seed=args.seed,
    )


def print_dataset(info) -> None:
    state = "unchanged (cached)" if info.cached else "built"
    print(f"dataset {info.version} {state} at {info.path}")
    print(
        f"  scale x{info.scale}: {info.counts['train']} train / {info.counts['val']} val "
        "whole frames (training draws fresh crops from them)"
    )
    from videoboost.data.shards import load_config

    with contextlib.suppress(OSError, ValueError, KeyError):
        d = load_config(info.path).degrade
        if d.profile == "real":
            print(f"  profile real: the clean LR and {d.real.variants} coded LR variants per frame "
                  f"(clean share {d.real.clean_share:.0%} of crops)")  # fmt: skip
        if load_config(info.path).window:
            print(f"  windows: {load_config(info.path).window} neighbour(s) a side per frame "
                  "(video tier)")  # fmt: skip
    prescale: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError, KeyError):
        prescale = load_config(info.path).prescale
    for s in info.sources:
        if s.skipped:
            print(f"  SKIPPED {s.path}: {s.skipped}", file=sys.stderr)
        else:
            factor = prescale.get(s.content_hash)
            scaled = f", prescaled x{factor:g}" if factor else ""
            print(f"  source {s.path}: {s.frames_used} frames (split: {s.split}{scaled})")
    if info.validation:
        ok = "passed" if info.validation["success"] else "FAILED"
        print(f"  validation {ok}; report: {info.docs}")


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from videoboost.mlops.validation import build_validated_dataset

    info = build_validated_dataset(args.sources, args.out, dataset_config_from_args(args))
    print_dataset(info)
    return 0


def cmd_corpus_build(args: argparse.Namespace) -> int:
    """The base corpus (its manifest checked file by file) as a validated training dataset."""
    from videoboost.data.corpus import MANIFEST, dataset_sources, load_corpus
    from videoboost.mlops.validation import build_validated_dataset

    corpus = load_corpus(args.manifest or MANIFEST)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(corpus.counts().items()))
    print(f"corpus {corpus.name} v{corpus.version} ({counts}); manifest sha256 "
          f"{corpus.manifest_sha256[:16]}, every file checked")  # fmt: skip
    cfg = dataset_config_from_args(args)
    # The manifest's per-clip prescale factors (heavily compressed clips) go into the config,
    # so they are part of the dataset's version.
    cfg = cfg.model_validate({**cfg.model_dump(), "prescale": corpus.prescale()})
    info = build_validated_dataset(dataset_sources(corpus), args.out, cfg)
    print_dataset(info)
    return 0


def cmd_base_export(args: argparse.Namespace) -> int:
    """A checkpoint file as a shipped base: ``.keras``, its card ``.json`` and ``.md``."""
    from videoboost.training.base import export_base, read_card

    model = export_base(args.checkpoint, Path(args.out) if args.out else None)
    card = read_card(model)
    print(f"base {model} ({card['parameters']:,} parameters, {card['training']['hours']:.2f} h, "
          f"{card['training']['steps']:,} steps); card {model.with_suffix('.json')}")  # fmt: skip
    for track, s in card["benchmark"]["tracks"].items():
        print(f"  {track:12s} {s['bench_psnr']:.2f} dB, {s['bench_psnr_gain']:+.2f} over bicubic")
    return 0


def cmd_dataset_validate(args: argparse.Namespace) -> int:
    from videoboost.data.dataset import load_info
    from videoboost.mlops.validation import validate_dataset

    info = load_info(args.dir)
    result = validate_dataset(args.dir)
    print(f"dataset {info.version} at {info.path}: " + result.report())
    return 0 if result.success else 3


def train_config_from_args(args: argparse.Namespace, scale: int):
    """Defaults < --config FILE < explicit flags."""
    from videoboost.config import TrainConfig, load_overrides

    data = load_overrides(args.config) if args.config else {}
    gen = dict(data.get("generator", {}))
    if args.tier:
        gen["tier"] = args.tier
    gen["scale"] = scale
    data["generator"] = gen
    for flag, key in (
        ("epochs", "pretrain_epochs"),
        ("gan_epochs", "gan_epochs"),
        ("steps", "steps_per_epoch"),
        ("batch_size", "batch_size"),
        ("seed", "seed"),
        ("crop", "crop"),
        ("minutes", "minutes"),
        ("precision", "precision"),
    ):
        if getattr(args, flag, None) is not None:
            data[key] = getattr(args, flag)
    return TrainConfig.model_validate(data)


def print_metrics_table(rows: dict[str, float]) -> None:
    width = max(len(k) for k in rows)
    print(f"  {'metric'.ljust(width)}  value")
    for key, value in rows.items():
        print(f"  {key.ljust(width)}  {value:.4f}")


def cmd_train(args: argparse.Namespace) -> int:
    from videoboost.data.dataset import load_info
    from videoboost.errors import VideoBoostError
    from videoboost.mlops.tracking import MODEL_NAME, train_run

    register = not args.no_register
    if args.resume and Path(args.resume).is_file():
        # A checkpoint file (from this machine or another): a new run continues it.
        result = train_run(args.dataset, None, resume_file=args.resume,
                           checkpoint_file=args.checkpoint_file, progress=not args.quiet,
                           register_model=register)  # fmt: skip
    elif args.resume:
        result = train_run(None, None, resume_run_id=args.resume, progress=not args.quiet,
                           register_model=register)  # fmt: skip
    else:
        if not args.dataset:
            raise VideoBoostError("--dataset DIR is required (or --resume RUN_ID)")
        info = load_info(args.dataset)
        if args.scale is not None and args.scale != info.scale:
            raise VideoBoostError(
                f"--scale {args.scale} does not match the dataset's x{info.scale}; "
                f"build a x{args.scale} dataset with `videoboost dataset build --scale {args.scale}`"
            )
        cfg = train_config_from_args(args, info.scale)
        from videoboost.mlops.bases import resolve_init

        init, why = resolve_init(args.init, cfg.generator)
        print(f"training starts from {why}")
        result = train_run(
            args.dataset,
            cfg,
            progress=not args.quiet,
            init=init,
            checkpoint_file=args.checkpoint_file,
            register_model=register,
        )
    if result["run_id"] is None:  # a non-chief worker of a multi-worker run
        print(f"{result['worker']}: trained in step with the chief, which logs the MLflow run")
    else:
        print(f"run {result['run_id']}")
    if result.get("parent"):
        print(f"warm-started from {result['parent']}")
    if result["version"]:
        print(f"registered {MODEL_NAME} version {result['version']}")
    gan = result.get("gan_check") or {}
    if gan:
        print(
            f"adversarial phase: held-out PSNR {gan['bench_psnr_pixel']:.2f} dB after the pixel "
            f"phase, {gan['bench_psnr_gan']:.2f} dB after it; kept the {gan['kept']} weights"
        )
    print_metrics_table(result["final"])
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The main job: the Prefect retrain pipeline, then the batch upscaler on the sample."""
    import httpx

    from flows.main_job import main_job, print_report
    from videoboost.errors import PrefectUnavailable
    from videoboost.mlops.prefect_server import console_without_tracebacks, prefect_api

    # Our own Prefect server (or the user's, checked first), never a temporary one that a
    # busy machine cannot start in time; stopped when the job ends, however it ends.
    with prefect_api() as api_url:
        console_without_tracebacks()  # the error ends as one line, not three tracebacks
        try:
            result = main_job(args.sources or None, tier=args.tier, init=args.init)
        except httpx.TransportError as exc:  # the server went away mid-run
            raise PrefectUnavailable(
                f"the Prefect API at {api_url} stopped answering ({type(exc).__name__}: "
                f"{exc}); check that server (or its log) and run the job again"
            ) from None
    print_report(result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videoboost", description="GAN video super-resolution with an MLOps stack."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ds = sub.add_parser(
        "dataset", help="build and validate datasets of whole LR/HR frames"
    ).add_subparsers(dest="dataset_command", required=True)
    b = ds.add_parser("build", help="extract frames, make LR/HR pairs, validate, publish")
    b.add_argument("sources", nargs="+", help="videos, images or folders of stills")
    b.add_argument("--out", required=True, help="dataset folder (written atomically)")
    _add_dataset_options(b)
    b.set_defaults(func=cmd_dataset_build)
    v = ds.add_parser("validate", help="run the Great Expectations suite on a dataset")
    v.add_argument("dir")
    v.set_defaults(func=cmd_dataset_validate)

    c = sub.add_parser(
        "corpus", help="the licensed base corpus (data/base/manifest.json)"
    ).add_subparsers(dest="corpus_command", required=True)
    cb = c.add_parser("build", help="check the manifest's files, build a validated dataset")
    cb.add_argument("--out", required=True, help="dataset folder (written atomically)")
    cb.add_argument("--manifest", default=None, help="default: data/base/manifest.json")
    _add_dataset_options(cb, clip_frames=CORPUS_CLIP_FRAMES)
    cb.set_defaults(func=cmd_corpus_build)

    bs = sub.add_parser("base", help="base generators shipped in models/base/").add_subparsers(
        dest="base_command", required=True
    )
    be = bs.add_parser("export", help="a checkpoint file as a base: .keras plus its model card")
    be.add_argument("checkpoint", help="a file from `videoboost train --checkpoint-file`")
    be.add_argument("--out", default=None, help="folder (default: models/base/)")
    be.set_defaults(func=cmd_base_export)

    t = sub.add_parser("train", help="train a generator; log to MLflow; register it")
    t.add_argument("--dataset", help="a dataset folder from `videoboost dataset build`")
    t.add_argument("--tier", choices=["fast", "quality", "video"], default=None,
                   help="video: a window of 2k+1 aligned frames (needs a dataset built with "
                   "--window); fast/quality: one frame")  # fmt: skip
    t.add_argument("--scale", type=int, choices=[2, 3, 4, 5], default=None,
                   help="must match the dataset (default: the dataset's)")  # fmt: skip
    t.add_argument("--epochs", type=int, default=None, help="pixel-loss (phase 1) epochs")
    t.add_argument("--gan-epochs", type=int, default=None, help="adversarial (phase 2) epochs")
    t.add_argument("--steps", type=int, default=None, help="steps per epoch")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--crop", type=int, default=None, help="LR side of the random training crops")
    t.add_argument("--minutes", type=float, default=None,
                   help="wall-clock budget of the run (the clock, not --epochs, ends it)")  # fmt: skip
    t.add_argument("--init", metavar="base|champion|none|URI", default="champion",
                   help="where training starts: champion (default; the shipped base of the tier "
                   "and scale while there is no champion of them, else from scratch), base (the "
                   "shipped base, models/base/), none (from scratch), or any generator of the "
                   "same tier and scale (models:/..., runs:/..., or a .keras file)")  # fmt: skip
    t.add_argument("--precision", choices=["float32", "mixed_bfloat16", "auto"], default=None,
                   help="training arithmetic (default float32; auto: bfloat16 where the CPU has "
                   "AMX)")  # fmt: skip
    t.add_argument("--config", default=None, help="YAML/JSON file of TrainConfig overrides")
    t.add_argument("--resume", metavar="RUN_ID|FILE", default=None,
                   help="continue a killed run from its last checkpoint: a run id (same MLflow "
                   "run) or a checkpoint file from --checkpoint-file, from any machine (a new "
                   "run continues its steps, schedule and curves)")  # fmt: skip
    t.add_argument("--checkpoint-file", metavar="FILE", default=None,
                   help="also pack every epoch's checkpoint into this one file (atomically), "
                   "to carry or commit; resuming a file keeps writing it unless this is given")  # fmt: skip
    t.add_argument(
        "--no-register",
        action="store_true",
        help="log the model to the run but do not register a version",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser(
        "run", help="the main job: retrain pipeline on the sample clip, then upscale it"
    )
    r.add_argument("sources", nargs="*", help="training footage (default: the bundled clip)")
    r.add_argument("--tier", choices=["fast", "quality", "video"], default="fast",
                   help="the generator to train (default fast; video: a window of 3 aligned "
                   "frames, its dataset built with neighbours)")  # fmt: skip
    r.add_argument("--init", metavar="base|champion|none|URI", default="champion",
                   help="where the candidate starts (default champion: the shipped base on an "
                   "empty registry, which is registered and put through the gate first)")  # fmt: skip
    r.set_defaults(func=cmd_run)

    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from videoboost.errors import VideoBoostError

    args = build_parser().parse_args(argv)
    configure_environment()
    try:
        return args.func(args)
    except VideoBoostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # A write the command could not make (disk full, read-only folder): one line, no
        # traceback. Other OS errors are bugs to see in full.
        from videoboost.errors import os_error_cause, output_error

        if os_error_cause(exc) is None:
            raise
        error = output_error(exc, exc.filename or "the output")
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
