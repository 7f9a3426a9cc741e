"""The one-command main job (``make run`` -> ``videoboost run``).

Runs the ``retrain`` flow on the bundled training corpus with embedded defaults (SQLite MLflow store,
Prefect's temporary server with its SQLite database, local BentoML store, all under the state
folder), then upscales a 320x180 copy of the sample clip with the champion through the batch
path, writes a side-by-side PNG and prints where everything is.
"""

from pathlib import Path
from typing import Any

from videoboost.config import (
    DatasetConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    SamplingConfig,
    TrainConfig,
)
from videoboost.data.sources import SAMPLE_CLIP, TRAIN_SOURCES
from videoboost.state import configure_environment, home

# About five and a half minutes of training on 2 CPU cores (the clock, not an epoch count, ends it, so a
# slow machine trains fewer steps rather than for longer), the last part adversarial, so every
# stage of the pipeline runs. Fresh crops of the bundled footage every step. On an empty
# registry the shipped base of the tier (models/base/, hours of training on the licensed corpus)
# is registered and promoted first, so the run fine-tunes it; a later `make run` fine-tunes the
# champion. Fine-tuning at the from-scratch learning rate was measured to keep or raise every
# track of the base (docs/benchmarks/make_run.md), so there is no separate fine-tune schedule.
MAIN_JOB_TRAIN = TrainConfig(
    generator=GeneratorConfig(tier="fast", scale=4),
    discriminator=DiscriminatorConfig(filters=16, blocks=3),
    steps_per_epoch=400,
    pretrain_epochs=0,
    gan_epochs=1,
    minutes=5.5,
    gan_share=0.1,
    val_frames=4,
)
# Every 5th frame of a clip, at most 40 per clip, near-duplicates skipped; every photo. A tenth
# held out for validation (the end of each clip, 3 of the photos).
MAIN_JOB_DATASET = DatasetConfig(
    sampling=SamplingConfig(every=5, max_frames=40, dedupe_threshold=1.0), val_fraction=0.1
)


# The demo input is what low-res footage people own looks like: a 1/4 shrink coded by x264 at
# CRF 30 with the `medium` preset (93 kbit/s of video at 320x180 for the sample clip), not a clean
# shrink that only exists in benchmarks.
DEMO_CRF = 30


def make_lowres_clip(src: Path, dst: Path, scale: int, crf: int = DEMO_CRF) -> Path:
    """A 1/scale copy of ``src`` (the antialiased bicubic shrink, then H.264 at ``crf``, audio
    kept)."""
    from videoboost.config import DegradeConfig
    from videoboost.data.degrade import degrade, mod_crop
    from videoboost.video.pipeline import upscale_video

    if dst.is_file():
        return dst
    cfg = DegradeConfig(scale=scale, profile="clean")

    def shrink(frames):
        return [degrade(mod_crop(f, scale), cfg) for f in frames]

    upscale_video(src, dst, shrink, job_key=f"lowres-x{scale}-crf{crf}", crf=crf, preset="medium")
    return dst


def bitrate_kbps(path: Path) -> float:
    """The video stream's bitrate (audio left out), kbit/s; its bytes over its duration when the
    container does not say."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.bit_rate:
            return stream.bit_rate / 1000
        size = sum(p.size for p in container.demux(stream) if p.size)
        seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
    return size * 8 / 1000 / seconds if seconds else float("nan")


def comparison_png(lowres: Path, output: Path, original: Path, dst: Path, index: int = 60) -> Path:
    """LR | bicubic | VideoBoost | original for one frame of the demo clip."""
    import cv2

    from videoboost.data.degrade import mod_crop
    from videoboost.data.frames import iter_video_frames
    from videoboost.evaluation.compare import comparison_image

    def frame(path: Path):
        for f in iter_video_frames(path):
            if f.index == index:
                return f.rgb
        raise ValueError(f"{path} has no frame {index}")

    lr, sr, hr = frame(lowres), frame(output), frame(original)
    hr = mod_crop(hr, sr.shape[0] // lr.shape[0])[: sr.shape[0], : sr.shape[1]]
    img = comparison_image(lr, sr, hr, crop=320, crops=1, zoom=1)  # one wide crop for the README
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp.png")
    cv2.imwrite(str(tmp), img[..., ::-1])
    tmp.replace(dst)
    return dst


def main_job(
    sources: list[str] | None = None, tier: str = "fast", init: str | None = "champion"
) -> dict[str, Any]:
    """Retrain (dataset, validation, training, promotion, bento), then upscale the demo clip
    with the champion. ``tier`` ``video`` trains the video tier instead (its dataset, kept
    apart, also stores each frame's neighbours); the gate then decides whether it serves."""
    configure_environment()
    from flows.batch import batch_upscale
    from flows.params import RetrainParams
    from flows.retrain import retrain

    state = home()
    dataset, train_cfg, folder = MAIN_JOB_DATASET, MAIN_JOB_TRAIN, "sample"
    if tier != "fast":
        generator = train_cfg.generator.model_dump(exclude={"filters", "blocks", "window"})
        train_cfg = train_cfg.model_copy(
            update={"generator": GeneratorConfig(**{**generator, "tier": tier})}
        )
    if tier == "video":
        dataset = dataset.model_copy(update={"window": train_cfg.generator.window})
        folder = "sample-video"
    params = RetrainParams(
        sources=sources or [str(p) for p in TRAIN_SOURCES],
        dataset_dir=str(state / "datasets" / folder),
        dataset=dataset,
        train=train_cfg,
        init=None if init == "none" else init,
    )
    result = retrain(params)
    scale = params.dataset.scale
    lowres = make_lowres_clip(
        SAMPLE_CLIP, state / "demo" / f"{SAMPLE_CLIP.stem}_320x180_crf{DEMO_CRF}.mp4", scale
    )
    out_dir = state / "outputs"
    batch = batch_upscale([str(lowres)], out_dir=str(out_dir))
    output = Path(batch["done"][0]["output"])
    png = comparison_png(
        lowres, output, SAMPLE_CLIP, out_dir / f"{SAMPLE_CLIP.stem}_comparison.png"
    )
    result.update(lowres=str(lowres), output=str(output), comparison=str(png), model=batch["model"])
    return result


def _print_tracks(cand: dict[str, float], champ: dict[str, float], champion: str | None) -> None:
    """A version's held-out scores, every track against bicubic of the same input (and the
    champion's gain beside it, when there was one)."""
    from videoboost.evaluation.benchmark import track_metrics, tracks_of

    if not cand:
        return
    print(f"             held-out PSNR {cand['bench_psnr']:.2f} dB vs bicubic "
          f"{cand['bench_psnr_bicubic']:.2f} dB ({cand['bench_psnr_gain']:+.2f} dB)"
          + (f"; champion v{champion} {champ['bench_psnr']:.2f} dB" if champ else ""))  # fmt: skip
    for track in tracks_of(cand):
        tm = track_metrics(cand, track)
        other = track_metrics(champ, track) if champ else {}
        print(f"             {track:<11} {tm['bench_psnr']:.2f} dB vs bicubic of the same input "
              f"{tm['bench_psnr_bicubic']:.2f} dB ({tm['bench_psnr_gain']:+.2f} dB)"
              + (f"; champion {other['bench_psnr_gain']:+.2f} dB" if other else ""))  # fmt: skip
    if "bench_psnr_gain_mean" in cand:
        print(f"             mean gain over the tracks {cand['bench_psnr_gain_mean']:+.2f} dB")


def print_report(result: dict[str, Any]) -> None:
    import os

    from videoboost.mlops.version_card import ML_VIEW

    d, run, p = result["dataset"], result["run"], result["promotion"]
    state = home()
    base = result.get("base")
    cand = p.get("candidate_metrics", {})
    champ = p.get("champion_metrics", {})
    print("\n=== VideoBoost main job ===")
    print(f"dataset      {d['version']} ({'cache hit' if d['cached'] else 'built'}): "
          f"{d['train_frames']} train / {d['val_frames']} val frames at {d['path']}")  # fmt: skip
    print(f"validation   {d['validation']} (Great Expectations); report {d['data_docs']}")
    if base:
        bp = base.get("promotion") or {}
        verb = "registered" if base["registered"] else "already registered as"
        print(f"base         {Path(base['file']).name} {verb} videoboost-generator version "
              f"{base['version']}" + (f"; {bp['decision'].upper()}: {bp['reason']}" if bp else ""))  # fmt: skip
        _print_tracks(bp.get("candidate_metrics", {}), {}, None)
    print(f"training     starts from {run.get('warm_start', 'scratch')}")
    print(f"             MLflow run {run['run_id']}; registered videoboost-generator "
          f"version {run['version']}; val PSNR {run['val_psnr']:.2f} dB vs bicubic "
          f"{run['val_psnr_bicubic']:.2f} dB ({run['val_psnr_gain']:+.2f} dB)")  # fmt: skip
    line = f"promotion    {p['decision'].upper()}: {p['reason']}"
    print(line)
    _print_tracks(cand, champ, p.get("champion"))
    print(f"bento        {result['bento'] or 'unchanged (champion did not change)'}")
    print(f"served model {result['model']}")
    print(f"input clip   {result['lowres']} (320x180, H.264 CRF {DEMO_CRF}, "
          f"{bitrate_kbps(Path(result['lowres'])):.0f} kbit/s video)")  # fmt: skip
    print(f"output video {result['output']}")
    print(f"comparison   {result['comparison']}  (LR | bicubic | VideoBoost | original)")
    uri = os.environ["MLFLOW_TRACKING_URI"]
    print("\nnext:")
    print(f"  MLflow UI   .venv/bin/mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
          f"   # then http://127.0.0.1:5000/#/{ML_VIEW}")  # fmt: skip
    print(f"  Prefect UI  PREFECT_HOME={state / 'prefect'} .venv/bin/prefect server start "
          "--host 127.0.0.1   # then http://127.0.0.1:4200")  # fmt: skip
    bento = result["bento"] or "videoboost:latest"
    print(f"  serve       BENTOML_HOME={os.environ['BENTOML_HOME']} .venv/bin/bentoml serve {bento} "
          "--host 127.0.0.1 --port 3000")  # fmt: skip
    print("  web page    http://127.0.0.1:3000/ui   (once served: a picture or a clip against "
          "bicubic; the API's OpenAPI page is at /)")  # fmt: skip
