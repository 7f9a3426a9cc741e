"""Training core: two phases (L1 pre-training, then adversarial fine-tuning) with ``fit``.

Plain Keras, no MLflow: :mod:`videoboost.tracking` adds logging as a callback, and tests call
:func:`train` directly. Every epoch ends with whole-frame validation (PSNR/SSIM on Y against
bicubic on the same frames) and a checkpoint, so a killed run resumes where it stopped.

Models, optimizers and metrics are built inside the ``tf.distribute`` strategy of
``TrainConfig.strategy`` (:mod:`videoboost.distribute`); ``fit`` splits each global batch over
its replicas. Under a multi-worker strategy every worker runs this same function; only the chief
writes into ``work_dir``, the others write to a scratch folder that is deleted at the end.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
from tqdm.auto import tqdm

from videoboost.compare import comparison_image
from videoboost.config import TrainConfig
from videoboost.dataset import load_info, load_val_frames, make_tf_dataset
from videoboost.degrade import upscale_bicubic
from videoboost.errors import VideoBoostError
from videoboost.metrics import psnr_y, ssim_y

# Keys logged every epoch; MLflow and the CLI table use exactly these names.
EPOCH_KEYS = (
    "g_loss",
    "d_loss",
    "pixel_loss",
    "adv_loss",
    "val_psnr",
    "val_ssim",
    "val_psnr_bicubic",
    "val_ssim_bicubic",
    "val_psnr_gain",
)


@dataclass
class TrainResult:
    generator: Any  # keras.Model
    history: list[dict[str, float]]
    epochs_done: int
    final: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    checkpoint_dir: Path | None = None
    strategy: str = "default"
    replicas: int = 1
    chief: bool = True


def configure_tf(cfg: TrainConfig):
    """Threads, the distribution strategy, seeds; returns the strategy.

    TF's defaults often run one thread on these CPUs; 2 halves wall time. The order matters:
    threads and a multi-worker strategy can only be set before TensorFlow runs its first op.
    """
    import tensorflow as tf

    from videoboost.distribute import build_strategy
    from videoboost.engine import set_tf_threads

    set_tf_threads(cfg.threads)
    strategy = build_strategy(cfg)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        # Multi-threaded reductions otherwise differ run to run; measured cost here is small.
        tf.config.experimental.enable_op_determinism()
    return strategy


def learning_rate_schedule(initial: float, warmup: int, total_steps: int, minimum: float):
    """Linear warm-up from ~0 to ``initial``, then cosine decay to ``minimum``."""

    decay = max(total_steps - warmup, 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=initial / 100 if warmup else initial,
        decay_steps=decay,
        alpha=min(minimum / initial, 1.0),
        warmup_target=initial if warmup else None,
        warmup_steps=warmup,
    )


def predict_frame(generator, lr: np.ndarray) -> np.ndarray:
    """Run the generator on one RGB uint8 frame; returns RGB uint8 ``(H*s, W*s, 3)``."""
    out = generator(lr[None].astype(np.float32), training=False)
    return np.clip(np.rint(np.asarray(out)[0]), 0, 255).astype(np.uint8)


class WholeFrameValidation(keras.callbacks.Callback):
    """Adds ``val_*`` whole-frame metrics to the epoch logs, bicubic beside the model.

    Whole frames, not patches: patch PSNR flatters a model (no borders, textured crops only).
    """

    def __init__(self, frames: list[tuple[np.ndarray, np.ndarray]], scale: int):
        super().__init__()
        self.frames, self.scale = frames, scale
        bicubic = [upscale_bicubic(lr, scale) for lr, _ in frames]
        self.bic_psnr = float(
            np.mean([psnr_y(b, hr, scale) for b, (_, hr) in zip(bicubic, frames, strict=True)])
        )
        self.bic_ssim = float(
            np.mean([ssim_y(b, hr, scale) for b, (_, hr) in zip(bicubic, frames, strict=True)])
        )
        self.last_sr: np.ndarray | None = None

    def score(self, generator) -> dict[str, float]:
        psnrs, ssims = [], []
        for i, (lr, hr) in enumerate(self.frames):
            sr = predict_frame(generator, lr)
            if i == 0:
                self.last_sr = sr
            psnrs.append(psnr_y(sr, hr, self.scale))
            ssims.append(ssim_y(sr, hr, self.scale))
        psnr = float(np.mean(psnrs))
        return {
            "val_psnr": psnr,
            "val_ssim": float(np.mean(ssims)),
            "val_psnr_bicubic": self.bic_psnr,
            "val_ssim_bicubic": self.bic_ssim,
            "val_psnr_gain": psnr - self.bic_psnr,
        }

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.score(self.model.generator))


def sample_path(folder: Path, epoch: int) -> Path:
    """Where the comparison image of (1-based) ``epoch`` goes."""
    return folder / f"epoch_{epoch:03d}.png"


class SampleImages(keras.callbacks.Callback):
    """Writes ``samples/epoch_NNN.png`` (LR | bicubic | ours | HR) every ``every`` epochs."""

    def __init__(self, validation: WholeFrameValidation, folder: Path, every: int = 1):
        super().__init__()
        self.validation, self.folder, self.every = validation, folder, every
        self.latest: Path | None = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or self.validation.last_sr is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        lr, hr = self.validation.frames[0]
        img = comparison_image(lr, self.validation.last_sr, hr)
        self.latest = sample_path(self.folder, epoch + 1)
        cv2.imwrite(str(self.latest), img[..., ::-1])


class Checkpoint(keras.callbacks.Callback):
    """Every epoch: weights, optimizer state and progress, swapped in atomically.

    Also early stopping on ``val_psnr`` in the pixel phase (the adversarial phase trades PSNR
    for texture by design, so PSNR would stop it at once), keeping the best weights.
    """

    def __init__(self, folder: Path, history: list[dict], best: dict, patience: int):
        super().__init__()
        self.folder, self.history, self.best, self.patience = folder, history, best, patience
        self.best_weights = None
        self.wait = 0
        self.phase = "pixel"
        self.stopped_early = False

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        self.history.append({k: float(logs[k]) for k in EPOCH_KEYS if k in logs})
        if self.phase == "pixel" and "val_psnr" in logs:
            if logs["val_psnr"] > self.best.get("val_psnr", -math.inf):
                self.best.update(val_psnr=float(logs["val_psnr"]), epoch=epoch + 1)
                self.best_weights = self.model.generator.get_weights()
                self.wait = 0
            else:
                self.wait += 1
                if self.wait >= self.patience:
                    self.model.stop_training = True
                    self.stopped_early = True
        save_checkpoint(self.folder, self.model, epoch + 1, self.history, self.best)


class TqdmProgress(keras.callbacks.Callback):
    """One bar per epoch with the running pixel loss; a summary line after each epoch."""

    def __init__(self, steps: int, epochs: int):
        super().__init__()
        self.steps, self.epochs = steps, epochs
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step",
                        leave=False)  # fmt: skip

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.bar.update(1)
            if logs and batch % 10 == 0:
                self.bar.set_postfix(pixel=f"{float(logs.get('pixel_loss', 0)):.4f}")

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.close()
        logs = logs or {}
        parts = [f"{k} {logs[k]:.4f}" for k in ("pixel_loss", "adv_loss") if k in logs]
        parts += [f"{k} {logs[k]:.2f}" for k in ("val_psnr", "val_psnr_gain") if k in logs]
        tqdm.write(f"epoch {epoch + 1}/{self.epochs}: " + ", ".join(parts))


def save_checkpoint(folder: Path, model, epochs_done: int, history: list, best: dict) -> None:
    """Write weights + optimizer variables + progress to ``folder`` atomically (tmp, rename)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.generator.save_weights(tmp / "generator.weights.h5")
    model.discriminator.save_weights(tmp / "discriminator.weights.h5")
    for name in ("g_optimizer", "d_optimizer"):
        opt = getattr(model, name, None)
        if opt is not None and opt.built:
            np.savez(tmp / f"{name}.npz", *[np.asarray(v) for v in opt.variables])
    state = {"epochs_done": epochs_done, "history": history, "best": best}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint_state(folder: Path) -> dict | None:
    _recover_checkpoint(folder)
    state = folder / "state.json"
    return json.loads(state.read_text()) if state.is_file() else None


def _recover_checkpoint(folder: Path) -> None:
    """A kill between :func:`save_checkpoint`'s two renames leaves no ``folder``: use the new
    checkpoint if it was complete (``state.json`` is written last), else the previous one."""
    if folder.exists():
        return
    for suffix in (".tmp", ".old"):
        candidate = folder.with_name(folder.name + suffix)
        if (candidate / "state.json").is_file():
            candidate.rename(folder)
            return


def _restore_optimizer(opt, path: Path) -> None:
    if opt is None or not path.is_file():
        return
    with np.load(path) as z:
        values = [z[f"arr_{i}"] for i in range(len(z.files))]
    if len(values) == len(opt.variables):
        for var, value in zip(opt.variables, values, strict=True):
            if tuple(var.shape) == value.shape:
                var.assign(value)


def _pixel_optimizer(cfg: TrainConfig, total_steps: int):
    schedule = learning_rate_schedule(
        cfg.learning_rate, cfg.warmup_steps, total_steps, cfg.min_learning_rate
    )
    return keras.optimizers.Adam(schedule)


def train(
    dataset_dir: str | Path,
    cfg: TrainConfig,
    work_dir: str | Path,
    *,
    callbacks: Sequence[Any] = (),
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train a generator on a built dataset.

    Args:
        dataset_dir: a dataset from :func:`videoboost.dataset.build_dataset`; its scale must
            equal ``cfg.generator.scale``.
        cfg: hyperparameters.
        work_dir: checkpoints and sample images go here (a multi-worker non-chief only reads
            the chief's checkpoint here on resume, see the module doc).
        callbacks: extra Keras callbacks (e.g. MLflow logging); they see the ``val_*`` keys.
        resume: continue from ``work_dir/checkpoint`` if present.
        progress: show a progress bar per epoch.

    Raises:
        VideoBoostError: dataset/generator scale mismatch, no validation frames, or a batch size
            the replicas cannot share evenly (and strategy errors, see
            :func:`videoboost.distribute.build_strategy`).
    """
    from videoboost.distribute import is_chief, worker_name

    chief = is_chief(cfg)  # reads TF_CONFIG: a bad one fails before TensorFlow starts
    strategy = configure_tf(cfg)
    replicas = int(strategy.num_replicas_in_sync)
    if cfg.batch_size % replicas:
        lower = max(cfg.batch_size // replicas, 1) * replicas
        raise VideoBoostError(
            f"batch_size {cfg.batch_size} is the global batch and must split evenly over the "
            f"{replicas} replicas of strategy {cfg.strategy}; use {lower} or "
            f"{lower + replicas}"
        )
    work_dir = Path(work_dir)
    if chief:
        work_dir.mkdir(parents=True, exist_ok=True)
        write_dir = work_dir
    else:
        # Every worker saves (saving reads the replicated variables), but only the chief's copy
        # is kept; the others must not overwrite it on a shared disk.
        write_dir = Path(tempfile.mkdtemp(prefix=f"videoboost-{worker_name(cfg)}-"))
    try:
        with strategy.scope():
            result = _train_in_scope(
                dataset_dir, cfg, work_dir, write_dir, callbacks=callbacks, resume=resume,
                progress=progress,
            )  # fmt: skip
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    result.strategy, result.replicas, result.chief = cfg.strategy, replicas, chief
    if not chief:
        result.checkpoint_dir = None
    return result


def _train_in_scope(
    dataset_dir: str | Path,
    cfg: TrainConfig,
    work_dir: Path,
    write_dir: Path,
    *,
    callbacks: Sequence[Any],
    resume: bool,
    progress: bool,
) -> TrainResult:
    """:func:`train` inside the strategy scope: variables created here are replicated."""
    import tensorflow as tf

    from models.gan import SRGAN
    from models.losses import build_feature_extractor
    from models.networks import build_discriminator, build_generator

    info = load_info(dataset_dir)
    if info.scale != cfg.generator.scale:
        raise VideoBoostError(
            f"dataset {dataset_dir} is x{info.scale} but the generator is x{cfg.generator.scale}; "
            f"pass --scale {info.scale} or build a x{cfg.generator.scale} dataset"
        )
    val_frames = load_val_frames(dataset_dir)
    if not val_frames:
        raise VideoBoostError(f"dataset {dataset_dir} has no validation frames; rebuild it")

    generator = build_generator(cfg.generator)
    discriminator = build_discriminator(cfg.discriminator)
    model = SRGAN(generator, discriminator)
    train_ds = make_tf_dataset(
        dataset_dir, "train", cfg.batch_size, augment=cfg.augment, seed=cfg.seed, repeat=True
    )
    # In-memory data has no files to shard by: each worker keeps its share of every batch
    # (AUTO would try files first and warn on every multi-worker run).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds = train_ds.with_options(options)

    history: list[dict] = []
    best: dict = {}
    start = 0
    ckpt_dir = work_dir / "checkpoint"  # read on resume
    state = load_checkpoint_state(ckpt_dir) if resume else None
    if state is not None:
        start, history, best = state["epochs_done"], state["history"], state["best"]
        # Build variables before loading weights into them.
        sample_lr = np.zeros((1, 8, 8, 3), np.float32)
        generator(sample_lr)
        discriminator(generator(sample_lr))
        generator.load_weights(ckpt_dir / "generator.weights.h5")
        discriminator.load_weights(ckpt_dir / "discriminator.weights.h5")

    validation = WholeFrameValidation(val_frames[: cfg.val_frames], cfg.generator.scale)
    samples = SampleImages(validation, write_dir / "samples", cfg.sample_every)
    checkpoint = Checkpoint(write_dir / "checkpoint", history, best, cfg.early_stopping_patience)
    # Order matters: validation writes val_* into the logs the later callbacks read.
    core = [validation, samples, checkpoint]
    total_epochs = cfg.pretrain_epochs + cfg.gan_epochs
    progress_cb = [TqdmProgress(cfg.steps_per_epoch, total_epochs)] if progress else []

    pixel_end = cfg.pretrain_epochs
    total = cfg.pretrain_epochs + cfg.gan_epochs
    steps = cfg.steps_per_epoch
    if start < pixel_end:
        g_opt = _pixel_optimizer(cfg, pixel_end * steps)
        model.compile(g_opt, None, mode="pixel")
        if state is not None:
            _restore_optimizer(g_opt, ckpt_dir / "g_optimizer.npz")
        model.fit(
            train_ds,
            epochs=pixel_end,
            initial_epoch=start,
            steps_per_epoch=steps,
            callbacks=[*core, *callbacks, *progress_cb],
            verbose=0,
        )
        if checkpoint.best_weights is not None:
            generator.set_weights(checkpoint.best_weights)
        start = len(history)
        if checkpoint.stopped_early:
            # Later epochs were not better: the adversarial phase starts from the best ones.
            start = max(start, pixel_end)

    if cfg.gan_epochs and start < total:
        checkpoint.phase = "adversarial"
        g_opt = keras.optimizers.Adam(cfg.gan_learning_rate, beta_1=0.9)
        d_opt = keras.optimizers.Adam(cfg.gan_learning_rate, beta_1=0.9)
        extractor = build_feature_extractor(cfg.vgg_weights) if cfg.perceptual_weight > 0 else None
        if cfg.pretrain_discriminator_steps and start == pixel_end:
            model.compile(None, d_opt, mode="discriminator")
            model.fit(train_ds, epochs=1, steps_per_epoch=cfg.pretrain_discriminator_steps,
                      verbose=0)  # fmt: skip
        model.compile(
            g_opt,
            d_opt,
            mode="adversarial",
            pixel_weight=cfg.pixel_weight,
            adv_weight=cfg.adv_weight,
            perceptual_weight=cfg.perceptual_weight,
            gan_type=cfg.gan_type,
            feature_extractor=extractor,
        )
        if state is not None and state["epochs_done"] > pixel_end:
            _restore_optimizer(g_opt, ckpt_dir / "g_optimizer.npz")
            _restore_optimizer(d_opt, ckpt_dir / "d_optimizer.npz")
        model.fit(
            train_ds,
            epochs=total,
            initial_epoch=start,
            steps_per_epoch=steps,
            callbacks=[*core, *callbacks, *progress_cb],
            verbose=0,
        )

    final = validation.score(generator)
    return TrainResult(
        generator=generator,
        history=history,
        epochs_done=len(history),
        final=final,
        stopped_early=checkpoint.stopped_early,
        checkpoint_dir=write_dir / "checkpoint",
    )
