"""Tiny untrained generators and clips with audio, for the upscale/export/service tests."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from media import moving_frames


def tiny_generator(scale: int = 4, seed: int = 0):
    """A 4-filter fast generator whose last convolution is random instead of zero.

    A fresh generator *is* bicubic upsampling (zero-initialised last conv); the random kernel
    makes the convolutional path count, so tiling, batching and export differences show.
    """
    import keras

    from models.networks import build_generator
    from videoboost.config import GeneratorConfig

    keras.utils.set_random_seed(seed)
    gen = build_generator(GeneratorConfig(tier="fast", filters=4, scale=scale))
    layer = gen.get_layer("to_subpixels")
    kernel, bias = layer.get_weights()
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.05, kernel.shape).astype("float32"), bias])
    return gen


def make_clip(
    path: Path,
    n: int = 10,
    *,
    size: tuple[int, int] = (48, 32),
    rate: Fraction = Fraction(25),
    audio_streams: int = 1,
    seed: int = 0,
    picture: Callable[[int, int, int], np.ndarray] | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    faststart: bool = False,
    x264: dict[str, str] | None = None,
) -> Path:
    """A clip of ``n`` frames (``size`` = w, h) with ``audio_streams`` sine-wave AAC streams.

    Frames are moving texture, or ``picture(i, h, w)`` when given (e.g. a distinct grey level
    per frame, so a dropped or duplicated frame shows). ``x264`` adds encoder options (GOP,
    B-frames) to the libx264 defaults.
    """
    w, h = size
    frames = [picture(i, h, w) for i in range(n)] if picture else moving_frames(n, h, w, seed)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", container_options=options) as out:
        video = out.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            video.options = {"preset": "ultrafast", "crf": "10", **(x264 or {})}
        sounds = []
        for k in range(audio_streams):
            sound = out.add_stream("aac", rate=22050)
            sound.layout = "mono"
            sounds.append((sound, 330.0 * (k + 1)))
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = int(22050 * n / rate)
        t = np.arange(samples) / 22050
        for sound, hz in sounds:
            wave = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
            for k in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(wave[None, k : k + 1024]), format="flt", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 22050, k
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(*container.streams.audio) if p.size]


def training_dataset(root: Path) -> Path:
    """A built x4 dataset of whole 32x24 LR frames from a 30-frame synthetic clip (training tests)."""
    from media import write_clip

    from videoboost.config import DatasetConfig, DegradeConfig, SamplingConfig
    from videoboost.mlops.validation import build_validated_dataset

    cfg = DatasetConfig(
        # clean: these tests check training's mechanics and a quick gain over bicubic on clean
        # frames; the real profile's training is covered by the retrain flow's test.
        degrade=DegradeConfig(scale=4, profile="clean"),
        sampling=SamplingConfig(dedupe_threshold=0),
        min_lr_side=8,
        min_per_split=2,
    )
    return build_validated_dataset(
        [write_clip(root / "a.avi", n=30)], root / "ds", cfg, progress=False
    ).path


# A run to kill (`kill -9`) and resume: 3 pixel-loss epochs of 32 steps of an 8-filter generator.
# The killing tests poll every 10 ms and accept a kill in epoch 2 or 3; an epoch plus its
# validation and checkpoint takes far longer than that, so the kill lands mid-run on a fast host
# too, and the resume in the test process trains little. TrainConfig overrides, as a --config
# file takes them.
KILLABLE_RUN = {
    "generator": {"tier": "fast", "filters": 8},
    "steps_per_epoch": 32,
    "pretrain_epochs": 3,
    "batch_size": 8,
    "crop": 8,
    "warmup_steps": 5,
    "val_frames": 2,
    "learning_rate": 2e-3,
}


def tiny_train_cfg():
    """Two short pixel epochs of a 8-filter fast generator: seconds, not a quality bar."""
    from videoboost.config import DiscriminatorConfig, GeneratorConfig, TrainConfig

    return TrainConfig(
        generator=GeneratorConfig(tier="fast", filters=8, scale=4),
        discriminator=DiscriminatorConfig(filters=4, blocks=2),
        steps_per_epoch=20,
        pretrain_epochs=2,
        gan_epochs=0,
        batch_size=8,
        crop=8,
        warmup_steps=5,
        val_frames=2,
        learning_rate=3e-3,
    )


def tiny_retrain_params(tmp_path: Path, dataset_cfg, **overrides):
    """``retrain`` flow parameters over a 30-frame synthetic clip and a 12-frame held-out one."""
    from media import write_video

    from flows.params import RetrainParams
    from videoboost.config import PromoteConfig

    clip = write_video(tmp_path / "clip.avi", moving_frames(30))
    bench = write_video(tmp_path / "heldout.avi", moving_frames(12, seed=5))
    return RetrainParams(
        sources=[str(clip)],
        dataset_dir=str(tmp_path / "ds"),
        dataset=dataset_cfg,
        train=tiny_train_cfg(),
        # A floor any trained toy clears: these tests are about the wiring, not the quality bar.
        promote=PromoteConfig(min_gain_db=-100.0),
        benchmark_videos=[str(bench)],
        benchmark_frames=4,
        **overrides,
    )


def upscale_cli(capsys, model_file: Path, *args: str) -> tuple[int, str]:
    """``videoboost upscale ARGS`` in-process with ``model_file``: exit code and stderr."""
    from videoboost.cli import main

    rc = main(["upscale", *args, "--model", str(model_file), "--quiet", "--segment-frames", "4"])
    return rc, capsys.readouterr().err


def hidden_files(folder: Path) -> list[str]:
    """Temp files (``.x.partial.mp4``) and segment folders (``.x.parts``) left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def kill_9_when(child, ready: Callable[[], bool], timeout: float = 600) -> None:
    """Poll ``ready()`` every 10 ms while ``child`` (a ``subprocess.Popen``: the test's own, by
    its pid) runs, and SIGKILL it the first time it holds; ``ready`` may assert on what the child
    leaves visible meanwhile. Waits for the child either way, and kills it if the test fails.
    The caller checks ``child.returncode`` (``-SIGKILL`` when the kill landed)."""
    import signal
    import time

    try:
        deadline = time.monotonic() + timeout  # a busy 2-core host starts TensorFlow slowly
        while time.monotonic() < deadline and child.poll() is None:
            if ready():
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def tiny_dataset_config():
    """A dataset config sized for 128x96 synthetic clips: x4, LR frames of 32x24 (conftest's
    ``tiny_cfg``, also for module-scoped fixtures, which cannot use that one)."""
    from videoboost.config import DatasetConfig, DegradeConfig, SamplingConfig

    return DatasetConfig(degrade=DegradeConfig(scale=4), min_lr_side=8, min_per_split=2,
                         sampling=SamplingConfig(dedupe_threshold=0.5))  # fmt: skip
