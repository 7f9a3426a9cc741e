"""``videoboost`` command line. Each subcommand imports only what it needs (TF, MLflow and GX
are slow to import), and every user-facing failure is one line on stderr with a non-zero code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from videoboost.state import configure_environment

SAMPLE_CLIP = Path(__file__).resolve().parent.parent / "data" / "sample" / "bigbuckbunny.mp4"


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=int, default=4, choices=[2, 3, 4, 5])
    p.add_argument("--patch", type=int, default=32, help="LR patch side (HR = patch*scale)")
    p.add_argument("--patches-per-frame", type=int, default=8)
    p.add_argument("--every", type=int, default=1, help="keep every k-th frame")
    p.add_argument("--max-frames", type=int, default=None, help="cap of frames per source")
    p.add_argument(
        "--dedupe", type=float, default=1.0, help="near-duplicate threshold (0 = keep all)"
    )
    p.add_argument("--degrade", choices=["bicubic", "area"], default="bicubic")
    p.add_argument("--blur", type=float, default=0.0, help="Gaussian blur sigma (HR px)")
    p.add_argument("--noise", type=float, default=0.0, help="Gaussian noise sigma (grey levels)")
    p.add_argument("--jpeg", type=int, default=None, help="JPEG re-compression quality")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)


def dataset_config_from_args(args: argparse.Namespace):
    from videoboost.config import DatasetConfig, DegradeConfig, SamplingConfig

    return DatasetConfig(
        degrade=DegradeConfig(
            scale=args.scale,
            method=args.degrade,
            blur_sigma=args.blur,
            noise_sigma=args.noise,
            jpeg_quality=args.jpeg,
            seed=args.seed,
        ),
        sampling=SamplingConfig(
            every=args.every, max_frames=args.max_frames, dedupe_threshold=args.dedupe
        ),
        patch=args.patch,
        patches_per_frame=args.patches_per_frame,
        val_fraction=args.val_fraction,
        seed=args.seed,
    )


def print_dataset(info) -> None:
    state = "unchanged (cached)" if info.cached else "built"
    print(f"dataset {info.version} {state} at {info.path}")
    print(
        f"  scale x{info.scale}, LR patch {info.patch}px: "
        f"{info.counts['train']} train / {info.counts['val']} val pairs, "
        f"{info.counts.get('val_frames', 0)} whole validation frames"
    )
    for s in info.sources:
        if s.skipped:
            print(f"  SKIPPED {s.path}: {s.skipped}", file=sys.stderr)
        else:
            print(f"  source {s.path}: {s.frames_used} frames, {s.pairs} pairs ({s.split})")
    if info.validation:
        ok = "passed" if info.validation["success"] else "FAILED"
        print(f"  validation {ok}; report: {info.docs}")


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from videoboost.dataset import build_dataset

    info = build_dataset(args.sources, args.out, dataset_config_from_args(args))
    print_dataset(info)
    return 0


def cmd_dataset_validate(args: argparse.Namespace) -> int:
    from videoboost.dataset import load_info
    from videoboost.validation import validate_dataset

    info = load_info(args.dir)
    result = validate_dataset(args.dir)
    print(f"dataset {info.version} at {info.path}: " + result.report())
    return 0 if result.success else 3


def cmd_run(args: argparse.Namespace) -> int:
    from videoboost.dataset import build_dataset
    from videoboost.state import home

    sources = args.sources or [SAMPLE_CLIP]
    out = Path(args.out) if args.out else home() / "datasets" / "sample"
    info = build_dataset(sources, out, dataset_config_from_args(args))
    print_dataset(info)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videoboost", description="GAN video super-resolution with an MLOps stack."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ds = sub.add_parser("dataset", help="build and validate patch datasets").add_subparsers(
        dest="dataset_command", required=True
    )
    b = ds.add_parser("build", help="extract frames, make LR/HR pairs, validate, publish")
    b.add_argument("sources", nargs="+", help="videos, images or folders of stills")
    b.add_argument("--out", required=True, help="dataset folder (written atomically)")
    _add_dataset_options(b)
    b.set_defaults(func=cmd_dataset_build)
    v = ds.add_parser("validate", help="run the Great Expectations suite on a dataset")
    v.add_argument("dir")
    v.set_defaults(func=cmd_dataset_validate)

    r = sub.add_parser("run", help="the main job on the bundled sample clip (or given sources)")
    r.add_argument("sources", nargs="*", help="default: the bundled sample clip")
    r.add_argument("--out", default=None, help="dataset folder (default: <state>/datasets/sample)")
    _add_dataset_options(r)
    r.set_defaults(func=cmd_run)
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
