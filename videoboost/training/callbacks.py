"""Training callbacks: whole-frame validation, sample images, the per-epoch checkpoint, progress lines,
the training clock and the time budget that drives the learning rate."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import cv2
import keras
import numpy as np
from tqdm.auto import tqdm

from videoboost.config import TrainConfig
from videoboost.data.degrade import upscale_bicubic
from videoboost.evaluation.compare import comparison_image
from videoboost.evaluation.metrics import psnr_y, ssim_y

# Keys logged every epoch; MLflow and the CLI table use exactly these names.
from videoboost.training.checkpoint import save_checkpoint

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


def predict_frame(generator, lr: np.ndarray) -> np.ndarray:
    """Run the generator on one RGB uint8 frame (a video-tier model: one aligned window);
    returns RGB uint8 ``(H*s, W*s, 3)``."""
    out = generator(lr[None].astype(np.float32), training=False)
    return np.clip(np.rint(np.asarray(out)[0]), 0, 255).astype(np.uint8)


class WholeFrameValidation(keras.callbacks.Callback):
    """Adds ``val_*`` whole-frame metrics to the epoch logs, bicubic beside the model.

    Whole frames, not patches: patch PSNR flatters a model (no borders, textured crops only).
    """

    def __init__(self, frames: list[tuple[np.ndarray, np.ndarray]], scale: int):
        super().__init__()
        self.frames, self.scale = frames, scale
        # lr[..., :3]: a video-tier window's centre frame (the frame itself otherwise).
        bicubic = [upscale_bicubic(lr[..., :3], scale) for lr, _ in frames]
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
        img = comparison_image(lr[..., :3], self.validation.last_sr, hr)
        self.latest = sample_path(self.folder, epoch + 1)
        cv2.imwrite(str(self.latest), img[..., ::-1])


class Checkpoint(keras.callbacks.Callback):
    """Every epoch: weights, optimizer state and progress, swapped in atomically.

    Also early stopping on ``val_psnr`` in the pixel phase (the adversarial phase trades PSNR
    for texture by design, so PSNR would stop it at once), keeping the best weights.
    """

    def __init__(self, folder: Path, history: list[dict], best: dict, patience: int | None):
        super().__init__()
        self.folder, self.history, self.best, self.patience = folder, history, best, patience
        self.best_weights = None
        self.wait = 0
        self.phase = "pixel"
        self.stopped_early = False
        self.extra: dict = {}  # carried in state.json (phase flags, benchmark yardstick)
        self.clock: Clock | None = None
        self.batch_size = 0

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
                if self.patience is not None and self.wait >= self.patience:
                    self.model.stop_training = True
                    self.stopped_early = True
        extra = dict(self.extra)
        if self.clock is not None:
            extra["elapsed_s"] = self.clock.elapsed()
            extra["crops_drawn"] = self.clock.steps * self.batch_size
        save_checkpoint(self.folder, self.model, epoch + 1, self.history, self.best, extra)


def epoch_summary(logs: dict, phase: str) -> str:
    """``pixel_loss …, val_psnr …, val_psnr_gain …`` for an epoch's logs (the adversarial loss
    only in that phase): what the console and the Prefect flow-run log print."""
    keys = ("pixel_loss", "adv_loss") if phase == "adversarial" else ("pixel_loss",)
    parts = [f"{k} {logs[k]:.4f}" for k in keys if k in logs]
    parts += [f"{k} {logs[k]:.2f}" for k in ("val_psnr", "val_psnr_gain") if k in logs]
    return ", ".join(parts)


class EpochProgress(keras.callbacks.Callback):
    """A bar per epoch in a terminal; elsewhere (logs, CI, Prefect) one line per epoch only.

    ``epochs`` None means the clock ends training (``--minutes``), so there is no total to show.
    """

    def __init__(self, steps: int, epochs: int | None, show: bool = True):
        super().__init__()
        self.steps, self.epochs, self.show = steps, epochs, show
        self.bar = None
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        if self.show and sys.stderr.isatty():
            self.bar = tqdm(total=self.steps, desc=f"epoch {self._of(epoch)}", unit="step",
                            leave=False)  # fmt: skip

    def _of(self, epoch: int) -> str:
        return f"{epoch + 1}/{self.epochs}" if self.epochs else f"{epoch + 1}"

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.bar.update(1)
            if logs and batch % 10 == 0:
                self.bar.set_postfix(pixel=f"{float(logs.get('pixel_loss', 0)):.4f}")

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.show:
            return
        phase = getattr(self.model, "mode", None) or "pixel"
        minutes = (time.perf_counter() - self.started) / 60
        line = f"epoch {self._of(epoch)} ({phase}, {minutes:.1f} min): " + epoch_summary(
            logs or {}, phase
        )
        tqdm.write(line) if sys.stderr.isatty() else print(line, flush=True)


class Clock:
    """Training time and steps, summed over resumes (checkpoints carry ``elapsed_s``).

    A gap of more than ``max_gap`` seconds between two steps (the process stopped with SIGSTOP,
    a suspended laptop, a host that froze) counts as ``max_gap``: a budget of hours is spent
    training, and its learning-rate schedule does not run on while nothing trains. Epoch-end
    validation and checkpointing stay well under it.
    """

    def __init__(self, before: float = 0.0, steps: int = 0, max_gap: float = 120.0):
        self.before = before
        self.started: float | None = None
        self.steps = steps
        self.deadline_hit: float | None = None  # the deadline (s) a TimeBudget stopped at
        self.max_gap = max_gap
        self.paused = 0.0  # seconds of gaps beyond max_gap, not counted
        self._last: float | None = None

    def elapsed(self) -> float:
        if self.started is None:
            return self.before
        now = time.perf_counter()
        gap = now - (self._last if self._last is not None else now)
        current = max(gap - self.max_gap, 0.0)  # a pause under way right now
        return self.before + now - self.started - self.paused - current

    def start(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()
            self._last = self.started

    def step_done(self) -> None:
        """Count a finished step; a gap over ``max_gap`` since the last one is not counted."""
        now = time.perf_counter()
        if self._last is not None and now - self._last > self.max_gap:
            self.paused += now - self._last - self.max_gap
        self._last = now
        self.steps += 1

    def callback(self) -> keras.callbacks.Callback:
        """Counts time and steps in a phase without a budget."""
        clock = self

        class _Tick(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                clock.start()

            def on_train_batch_end(self, batch, logs=None):
                clock.step_done()

        return _Tick()


class TimeBudget(keras.callbacks.Callback):
    """Ends a phase at ``deadline`` seconds of training; with ``peak_lr``, also drives the
    learning rate: linear warm-up over ``cfg.warmup_steps``, then cosine decay to
    ``cfg.min_learning_rate`` over the phase's share of the clock (a step count is unknown
    when time is the budget)."""

    def __init__(self, clock: Clock, optimizer, cfg: TrainConfig, start_s: float,
                 deadline: float, peak_lr: float | None):  # fmt: skip
        super().__init__()
        self.clock, self.optimizer, self.cfg = clock, optimizer, cfg
        self.start_s, self.deadline, self.peak_lr = start_s, deadline, peak_lr
        self.phase_steps = 0

    def on_train_begin(self, logs=None):
        self.clock.start()

    def on_train_batch_begin(self, batch, logs=None):
        # Every 10th step is fine-grained enough for a schedule of minutes, and setting the
        # rate every step cost ~20% of a fast-tier step.
        if self.peak_lr is None or (
            self.clock.steps % 10 and self.clock.steps > self.cfg.warmup_steps
        ):
            return
        frac = (self.clock.elapsed() - self.start_s) / max(self.deadline - self.start_s, 1e-9)
        frac = min(max(frac, 0.0), 1.0)
        low = min(self.cfg.min_learning_rate, self.peak_lr)
        lr = low + 0.5 * (self.peak_lr - low) * (1 + math.cos(math.pi * frac))
        warm = self.cfg.warmup_steps
        if warm and self.clock.steps < warm:
            lr *= (self.clock.steps + 1) / warm
        self.optimizer.learning_rate = lr

    def on_train_batch_end(self, batch, logs=None):
        self.clock.step_done()
        if self.clock.elapsed() >= self.deadline:
            self.model.stop_training = True
            self.clock.deadline_hit = self.deadline
