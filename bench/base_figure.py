"""Draw LR | bicubic | model... | HR on one coded frame of the held-out benchmark, with PSNR-Y.

    VIDEOBOOST_HOME=.state .venv/bin/python bench/base_figure.py --track h264_crf23 \
        --model "from scratch=scratch.keras" --model base=models/base/fast-x4.keras \
        --model "base + fine-tune=models:/videoboost-generator/2" --png docs/base_finetune.png

Each ``--model LABEL=URI_OR_PATH`` (a registry URI of the store ``VIDEOBOOST_HOME`` names, or a
``.keras`` file; panels in that order) upscales the ``--track`` input of one frame of the
held-out benchmark (``build_benchmark``'s cached set: its frames, its codecs) the way
``evaluate`` does: the tiling ``Upscaler`` on the whole frame, a video-tier model on the
frame's run as a clip. The default frame is the one of ``bikes.mp4`` whose most detailed
``--crop`` window has the most detail; the crop is that window, enlarged ``--zoom`` times.
LR is the coded input, nearest-neighbour; bicubic is of the same coded input; HR the original.
Prints each panel's PSNR-Y on the crop and on the whole frame (the benchmark's per-frame score,
``scale`` px border shaved); ``--json`` keeps them. PNG and JSON are written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from videoboost.state import configure_environment  # noqa: E402

configure_environment()

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from videoboost.data.degrade import upscale_bicubic  # noqa: E402
from videoboost.evaluation.bench_scores import PSNR_CAP  # noqa: E402
from videoboost.evaluation.benchmark import BenchItem, build_benchmark  # noqa: E402
from videoboost.evaluation.compare import _energy, detailed_crop, side_by_side  # noqa: E402
from videoboost.evaluation.metrics import psnr_y  # noqa: E402


def crop_detail(hr: np.ndarray, side: int) -> float:
    """Detail of the most detailed ``side`` crop of ``hr`` (the measure of ``detail_corners``)."""
    y, x = detailed_crop(hr, side)
    return float(_energy(hr)[y : y + side, x : x + side].mean())


def pick_item(items: tuple[BenchItem, ...], spec: str, side: int) -> tuple[BenchItem, int]:
    """``NAME:K`` (the K-th benchmark frame of that source, 0 = its first), ``NAME`` (its frame
    whose best crop has the most detail) or ``auto`` (that frame over every source)."""
    name, _, k = spec.partition(":")
    chosen = [i for i in items if name in (i.name, "auto")]
    if not chosen:
        raise SystemExit(f"no benchmark item {name!r} on this track: {[i.name for i in items]}")
    if k:
        if not 0 <= int(k) < chosen[0].frames:
            raise SystemExit(f"{name} has benchmark frames 0..{chosen[0].frames - 1}, not {k}")
        return chosen[0], int(k)
    frames = [(i, j) for i in chosen for j in range(i.frames)]
    return max(frames, key=lambda f: crop_detail(f[0].hr[f[1]], side))  # first of equals


def source_frame(item: BenchItem, k: int) -> int:
    """The frame number in the source file of the item's ``k``-th benchmark frame."""
    for (start, _), r in zip(item.runs, item.run_slices(), strict=True):
        if r.start <= k < r.stop:
            return start + k - r.start
    raise IndexError(k)


def upscale(generator, item: BenchItem, k: int) -> np.ndarray:
    """Frame ``k`` of ``item`` as the benchmark upscales it (``evaluate``'s ``_item_outputs``)."""
    from videoboost.inference.engine import Upscaler, infer_scale, infer_window, keras_predict

    upscaler = Upscaler(
        keras_predict(generator), infer_scale(generator), window=infer_window(generator)
    )
    if upscaler.window and item.kind == "video":
        run = next(r for r in item.run_slices() if r.start <= k < r.stop)
        return list(upscaler.upscale_frames(item.lr[run]))[k - run.start]
    return upscaler.upscale_image(item.lr[k])


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="LABEL=URI_OR_PATH",
        help="a panel: models:/videoboost-generator/N (or @alias) or a .keras file; repeatable",
    )
    parser.add_argument("--track", default="h264_crf30", help="benchmark track of the input")
    parser.add_argument(
        "--item",
        default="bikes.mp4",
        help="NAME:K (the K-th benchmark frame of a held-out source), NAME (its frame with the "
        "most detailed crop; default bikes.mp4) or auto (that frame over all sources)",
    )
    parser.add_argument("--crop", type=int, default=128, help="HR px side of the crop")
    parser.add_argument("--zoom", type=int, default=2, help="nearest-neighbour enlargement")
    parser.add_argument(
        "--corner", default=None, help="Y,X of the crop in HR px (default: the most detailed)"
    )
    parser.add_argument("--png", required=True)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from videoboost.inference.engine import set_tf_threads
    from videoboost.mlops.generators import load_generator

    set_tf_threads(2)
    models = []
    for spec in args.model:
        label, sep, uri = spec.partition("=")
        if not sep or not label or not uri:
            raise SystemExit(f"--model {spec!r}: expected LABEL=URI_OR_PATH")
        models.append((label, uri, *load_generator(uri)))
    scale = models[0][3]["scale"]
    for label, uri, _, info in models:
        if info["scale"] != scale:
            raise SystemExit(f"{label} ({uri}) is x{info['scale']}, {models[0][0]} is x{scale}")

    bench = build_benchmark(scale)
    item, k = pick_item(bench.track(args.track).items, args.item, args.crop)
    lr, hr = item.lr[k], item.hr[k]
    side = min(args.crop, *hr.shape[:2])
    y, x = map(int, args.corner.split(",")) if args.corner else detailed_crop(hr, side)
    shown = [("bicubic", "", None, upscale_bicubic(lr, scale))]
    shown += [
        (label, uri, info["version"], upscale(gen, item, k)) for label, uri, gen, info in models
    ]
    nearest = cv2.resize(lr, hr.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    panels, rows = [(f"LR ({args.track})", nearest)], []
    for label, uri, version, sr in shown:
        crop_psnr = psnr_y(sr[y : y + side, x : x + side], hr[y : y + side, x : x + side])
        frame_psnr = min(psnr_y(sr, hr, scale), PSNR_CAP)
        rows.append(
            {
                "label": label,
                "model": uri,
                "version": version,
                "crop": crop_psnr,
                "frame": frame_psnr,
            }
        )
        panels.append((f"{label} {crop_psnr:.2f} dB", sr))
    panels.append(("HR", hr))
    img = side_by_side(panels, side, corners=[(y, x)], zoom=args.zoom)
    ok, png = cv2.imencode(".png", img[..., ::-1])
    if not ok:
        raise SystemExit("PNG encoding failed")
    write_atomic(Path(args.png), png.tobytes())

    where = f"{item.name} benchmark frame {k} (source frame {source_frame(item, k)})"
    print(f"{where}, track {args.track}, benchmark {bench.version}, x{scale}")
    print(
        f"crop {side}x{side} HR px at y={y} x={x}; PSNR-Y in dB (frame: {scale} px border shaved)"
    )
    width = max(len(r["label"]) for r in rows)
    print(f"  {'panel'.ljust(width)} {'crop':>7} {'gain':>7} {'frame':>7} {'gain':>7}")
    for r in rows:
        gc, gf = r["crop"] - rows[0]["crop"], r["frame"] - rows[0]["frame"]
        print(
            f"  {r['label'].ljust(width)} {r['crop']:>7.2f} {gc:>+7.2f} {r['frame']:>7.2f} {gf:>+7.2f}"
        )
    print(f"wrote {args.png}")
    if args.json:
        meta = {
            "item": item.name,
            "benchmark_frame": k,
            "source_frame": source_frame(item, k),
            "track": args.track,
            "benchmark": bench.version,
            "scale": scale,
            "crop": {"y": y, "x": x, "side": side, "zoom": args.zoom},
            "png": args.png,
            "rows": rows,
        }
        write_atomic(Path(args.json), (json.dumps(meta, indent=2) + "\n").encode())


if __name__ == "__main__":
    main()
