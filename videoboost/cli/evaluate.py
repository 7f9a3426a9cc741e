"""``videoboost evaluate``, ``promote`` and ``rollback``: the held-out benchmark and the gate.

Imports stay light at module level (no TensorFlow, no MLflow): the work is in
:mod:`videoboost.evaluation.benchmark` (core) and :mod:`videoboost.mlops.registry` (MLflow edge).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PROMOTE_EPILOG = """\
rules (all on the same benchmark, candidate and champion evaluated in this process):
  1. bench_psnr_gain (the clean track) >= --min-gain dB over bicubic (the floor);
  2. no champion of the candidate's scale yet: the candidate becomes champion;
  3. PSNR averaged over the tracks not worse than the champion's by more than --tolerance dB;
  4. no single track (clean, h264_crf23, ...) worse than the champion's by more than
     --track-tolerance dB, whatever the mean says;
  5. --primary beats the champion's by --margin (in that metric's unit).
Aliases: champion-x{scale} per scale, plus `champion` for --default-scale. A candidate that
passes the floor but loses gets `challenger`. The decision is written as tags on the version.

exit status: 0 when a decision was made and recorded -- promoted, rejected or unchanged
(a rejection is a normal outcome of the gate, not an error; the first line of output says
which); non-zero on errors, which leave the registry unchanged: 4 model not found,
5 MLflow store unavailable, 6 concurrent promotion (aliases moved meanwhile),
7 benchmark footage used in training, 2 unreadable benchmark source, 1 other.
"""


def _add_benchmark_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--videos",
        nargs="+",
        default=None,
        metavar="PATH",
        help="benchmark sources: videos, stills or folders of stills "
        "(default: data/sample/bikes.mp4 and data/sample/stills/, never used for training)",
    )
    p.add_argument("--frames", type=int, default=None, help="consecutive frames per video (24)")
    p.add_argument(
        "--fps-runs", type=int, default=None, help="timed 720p runs, median reported (5; 0 = skip)"
    )
    p.add_argument(
        "--tracks",
        nargs="+",
        default=None,
        metavar="TRACK",
        help="input kinds to score: clean, h264_crfNN, jpeg_qNN "
        "(default: clean h264_crf23 h264_crf30 jpeg_q50; clean must come first)",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")


def _bench_config(args: argparse.Namespace):
    from videoboost.config import BenchmarkConfig

    data = {}
    if args.frames is not None:
        data["frames"] = args.frames
    if args.fps_runs is not None:
        data["fps_runs"] = args.fps_runs
    if getattr(args, "tracks", None):
        data["tracks"] = tuple(args.tracks)
    return BenchmarkConfig(**data)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from videoboost.mlops.registry import evaluate_and_log

    report, logged = evaluate_and_log(
        args.model, sources=args.videos, cfg=_bench_config(args), log=args.log
    )
    print(report.table())
    if args.json:
        report.to_json(args.json)
        print(f"report written to {args.json}")
    for where in logged:
        print(f"logged to {where}")
    return 0


def _promote_config(args: argparse.Namespace):
    from videoboost.config import PromoteConfig

    flags = {
        "min_gain_db": args.min_gain,
        "tolerance_db": args.tolerance,
        "track_tolerance_db": getattr(args, "track_tolerance", None),
        "margin": args.margin,
        "primary_metric": args.primary,
        "default_scale": args.default_scale,
    }
    return PromoteConfig(**{k: v for k, v in flags.items() if v is not None})


def _write_json(path: str | None, payload: dict) -> None:
    if path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"decision written to {path}")


def cmd_promote(args: argparse.Namespace) -> int:
    from videoboost.mlops.registry import promote

    decision = promote(
        args.version,
        _promote_config(args),
        sources=args.videos,
        bench_cfg=_bench_config(args),
        dry_run=args.dry_run,
    )
    print(decision.summary())
    _write_json(args.json, decision.to_dict())
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from videoboost.mlops.registry import rollback

    decision = rollback(args.scale, _promote_config(args))
    print(decision.summary())
    return 0


def register(sub) -> None:
    """Add ``evaluate``, ``promote`` and ``rollback`` to the ``videoboost`` subparsers."""
    e = sub.add_parser(
        "evaluate",
        help="score a model on the held-out benchmark, bicubic beside it",
        description="Score MODEL on the held-out benchmark (whole frames, the model's scale), "
        "one row per track (clean input and the same frames H.264- and JPEG-coded): "
        "PSNR/SSIM on Y, flicker and 720p throughput, each with the bicubic baseline of the "
        "same input. "
        "Scores on the default benchmark are logged to MLflow: bench_* tags on the model "
        "version, bench_* metrics on its run and on the active run.",
    )
    e.add_argument(
        "model",
        help="models:/videoboost-generator/3, models:/videoboost-generator@champion, "
        "a version number, or a local .keras file",
    )
    _add_benchmark_options(e)
    log = e.add_mutually_exclusive_group()
    log.add_argument("--log", dest="log", action="store_true", default=None,
                     help="log to MLflow even for a custom --videos benchmark")  # fmt: skip
    log.add_argument("--no-log", dest="log", action="store_false", help="log nothing")
    e.set_defaults(func=cmd_evaluate, log=None)

    p = sub.add_parser(
        "promote",
        help="evaluate a version against the champion and move the champion alias",
        description="Evaluate VERSION (default: the newest) and the champion of its scale on "
        "the same benchmark; move champion aliases to it if it passes the rules below.",
        epilog=PROMOTE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("version", nargs="?", default=None, help="registry version (default: newest)")
    _add_promote_options(p)
    p.add_argument("--min-gain", type=float, default=None, metavar="DB",
                   help="floor over bicubic in dB (0.5)")  # fmt: skip
    p.add_argument("--tolerance", type=float, default=None, metavar="DB",
                   help="may be this much worse than the champion on PSNR (0.1)")  # fmt: skip
    p.add_argument("--track-tolerance", type=float, default=None, metavar="DB",
                   help="may be at most this much worse than the champion on any one track "
                        "(0.5)")  # fmt: skip
    p.add_argument("--margin", type=float, default=None,
                   help="must beat the champion on --primary by this (0.05)")  # fmt: skip
    p.add_argument("--primary", choices=["bench_psnr_mean", "bench_psnr", "bench_ssim"],
                   default=None,
                   help="primary metric (bench_psnr_mean: PSNR averaged over the tracks)")  # fmt: skip
    _add_benchmark_options(p)
    p.add_argument("--dry-run", action="store_true", help="decide and print; write nothing")
    p.set_defaults(func=cmd_promote)

    r = sub.add_parser(
        "rollback",
        help="move the champion alias back to the previous champion",
        description="Move champion-x{scale} (and `champion` for the default scale) back to the "
        "previous champion recorded by `promote`; recorded as tags on both versions. "
        "Exit status 0 when rolled back, non-zero when there is nothing to roll back to.",
    )
    r.add_argument("--scale", type=int, choices=[2, 3, 4, 5], default=None,
                   help="which champion (default: --default-scale)")  # fmt: skip
    _add_promote_options(r)
    r.set_defaults(func=cmd_rollback, min_gain=None, tolerance=None, margin=None, primary=None)


def _add_promote_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--default-scale", type=int, choices=[2, 3, 4, 5], default=None,
                   help="the scale the plain `champion` alias serves (4)")  # fmt: skip
