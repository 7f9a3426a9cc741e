"""Re-score a trained checkpoint on the held-out benchmark and draw LR | bicubic | ours | HR.

    .venv/bin/python bench/figure.py --tier fast --checkpoint .state/bench-train/fast/checkpoint \
        --png docs/comparison_fast.png

Prints the benchmark table (with 720p throughput measured in this process, after warm-up, and
cv2 bicubic's in the same run) and writes the picture used in the README.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from videoboost.state import configure_environment  # noqa: E402

configure_environment()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=["fast", "quality"], required=True)
    parser.add_argument("--checkpoint", required=True, help="a training checkpoint folder")
    parser.add_argument("--png", required=True)
    parser.add_argument("--crop", type=int, default=192)
    args = parser.parse_args()

    import cv2

    from bench.train import bicubic_fps
    from models.networks import build_generator
    from videoboost.config import BenchmarkConfig, GeneratorConfig
    from videoboost.evaluation.benchmark import build_benchmark, evaluate_keras
    from videoboost.evaluation.compare import comparison_image
    from videoboost.inference.engine import set_tf_threads

    set_tf_threads(2)
    gen = build_generator(GeneratorConfig(tier=args.tier))
    gen.load_weights(Path(args.checkpoint) / "generator.weights.h5")
    bench = build_benchmark(scale=4)
    report = evaluate_keras(gen, bench, BenchmarkConfig(fps_runs=9), model=args.tier)
    print(report.table())
    print(f"cv2 bicubic 320x180 -> 1280x720 in the same run: {bicubic_fps():.0f} fps")
    s = report.sample
    img = comparison_image(
        s["lr"], s["sr"], s["hr"], crop=args.crop, label=f"VideoBoost {args.tier}"
    )
    out = Path(args.png)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), img[..., ::-1])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
