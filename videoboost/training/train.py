"""Training core: two phases (L1 pre-training, then adversarial fine-tuning) with ``fit``.

Plain Keras, no MLflow: :mod:`videoboost.mlops.tracking` adds logging as a callback, and tests call
:func:`train` directly. Every epoch ends with whole-frame validation (PSNR/SSIM on Y against
bicubic on the same frames) and a checkpoint, so a killed run resumes where it stopped.

Models, optimizers and metrics are built inside the ``tf.distribute`` strategy of
``TrainConfig.strategy`` (:mod:`videoboost.training.distribute`); ``fit`` splits each global batch over
its replicas. Under a multi-worker strategy every worker runs this same function; only the chief
writes into ``work_dir``, the others write to a scratch folder that is deleted at the end.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from videoboost.config import DEFAULT_PATIENCE, DEFAULT_PRETRAIN_EPOCHS, TrainConfig
from videoboost.data.shards import (
    load_info,
)
from videoboost.errors import VideoBoostError

# Keys logged every epoch; MLflow and the CLI table use exactly these names.
from videoboost.training.callbacks import (
    EPOCH_KEYS,
    Checkpoint,
    Clock,
    EpochProgress,
    SampleImages,
    TimeBudget,
    WholeFrameValidation,
    epoch_summary,
    predict_frame,
    sample_path,
)
from videoboost.training.checkpoint import (
    _restore_optimizer,
    load_checkpoint_state,
    save_checkpoint,
)
from videoboost.training.crops import make_tf_dataset
from videoboost.training.plan import crop_plan, validation_frames

# The training core's public face: callers keep importing these from here.
__all__ = [
    "EPOCH_KEYS",
    "Checkpoint",
    "Clock",
    "EpochProgress",
    "SampleImages",
    "TimeBudget",
    "TrainResult",
    "WholeFrameValidation",
    "configure_tf",
    "crop_plan",
    "epoch_summary",
    "learning_rate_schedule",
    "load_checkpoint_state",
    "predict_frame",
    "sample_path",
    "save_checkpoint",
    "train",
    "training_precision",
    "validation_frames",
    "warm_start",
]


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
    gan_check: dict[str, Any] = field(default_factory=dict)  # see _gan_guard
    elapsed_s: float = 0.0
    steps: int = 0
    ended_by: str = ""  # which limit ended the run (the budget, an epoch cap, early stopping)
    precision: str = "float32"  # the arithmetic it trained in (the generator is float32)


def configure_tf(cfg: TrainConfig):
    """Threads, the distribution strategy, seeds; returns the strategy.

    TF's defaults often run one thread on these CPUs; 2 halves wall time. The order matters:
    threads and a multi-worker strategy can only be set before TensorFlow runs its first op.
    """
    import tensorflow as tf

    from videoboost.inference.engine import set_tf_threads
    from videoboost.training.distribute import build_strategy

    set_tf_threads(cfg.threads)
    strategy = build_strategy(cfg)
    keras.utils.set_random_seed(cfg.seed)
    if _deterministic(cfg):
        # Multi-threaded reductions otherwise differ run to run; measured cost here is small.
        tf.config.experimental.enable_op_determinism()
    else:
        # Op determinism is process-wide and TF has no public switch back: a process that
        # trained deterministically before (a Prefect worker, a test session) would otherwise
        # run every later budgeted run without XLA, 1.4-1.6x slower, with only a warning.
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
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
    init: Any = None,
    scorer: Callable[[Any], float] | None = None,
) -> TrainResult:
    """Train a generator on a built dataset.

    Args:
        dataset_dir: a dataset from :func:`videoboost.data.dataset.build_dataset`; its scale must
            equal ``cfg.generator.scale``.
        cfg: hyperparameters.
        work_dir: checkpoints and sample images go here (a multi-worker non-chief only reads
            the chief's checkpoint here on resume, see the module doc).
        callbacks: extra Keras callbacks (e.g. MLflow logging); they see the ``val_*`` keys.
        resume: continue from ``work_dir/checkpoint`` if present.
        progress: show a progress bar per epoch (one line per epoch outside a terminal).
        init: a generator (``keras.Model``) of the same tier and scale to start from (warm
            start); None = a fresh generator, which starts as bicubic upsampling.
        scorer: ``generator -> PSNR`` on the held-out benchmark; with an adversarial phase the
            run keeps the pixel-phase weights when the adversarial ones score more than
            ``cfg.gan_max_loss_db`` lower (see ``TrainResult.gan_check``).

    Raises:
        VideoBoostError: dataset/generator scale mismatch, no validation frames, or a batch size
            the replicas cannot share evenly (and strategy errors, see
            :func:`videoboost.training.distribute.build_strategy`).
    """
    from videoboost.training.distribute import is_chief, worker_name

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
    precision = training_precision(cfg)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        with strategy.scope():
            result = _train_in_scope(
                dataset_dir, cfg, work_dir, write_dir, callbacks=callbacks, resume=resume,
                progress=progress, init=init, scorer=scorer,
            )  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy(previous)  # process-wide: put it back
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    result.generator = as_float32(result.generator, cfg)
    result.precision = precision
    result.strategy, result.replicas, result.chief = cfg.strategy, replicas, chief
    if not chief:
        result.checkpoint_dir = None
    return result


def training_precision(cfg: TrainConfig, host=None) -> str:
    """``cfg.precision`` with ``auto`` resolved for ``host`` (default: this one): mixed bfloat16
    where the CPU has AMX tiles, float32 elsewhere. With avx512_bf16 alone (Zen 4), training in
    bfloat16 measured 1.10x (fast) and 0.93x (quality) the crops/s of float32
    (docs/benchmarks/train_precision.md): no gain for the rounding; emulated bf16 is slower."""
    if cfg.precision != "auto":
        return cfg.precision
    from videoboost.host import detect_host

    host = host or detect_host()
    return "mixed_bfloat16" if "amx_bf16" in host.flags else "float32"


def as_float32(generator, cfg: TrainConfig):
    """A float32 generator with ``generator``'s weights (mixed-precision layers keep float32
    variables, so the weights carry over as they are); the same object when it is float32."""
    if generator.dtype_policy.name == "float32":
        return generator
    from models.networks import build_generator

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        out = build_generator(cfg.generator)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    out.set_weights(generator.get_weights())
    return out


def _train_in_scope(
    dataset_dir: str | Path,
    cfg: TrainConfig,
    work_dir: Path,
    write_dir: Path,
    *,
    callbacks: Sequence[Any],
    resume: bool,
    progress: bool,
    init: Any,
    scorer: Callable[[Any], float] | None,
) -> TrainResult:
    """:func:`train` inside the strategy scope: variables created here are replicated."""
    import tensorflow as tf

    from models.gan import SRGAN
    from models.networks import build_discriminator, build_generator

    info = load_info(dataset_dir)
    if info.scale != cfg.generator.scale:
        raise VideoBoostError(
            f"dataset {dataset_dir} is x{info.scale} but the generator is x{cfg.generator.scale}; "
            f"pass --scale {info.scale} or build a x{cfg.generator.scale} dataset"
        )
    if not info.counts.get("val"):
        raise VideoBoostError(f"dataset {dataset_dir} has no validation frames; rebuild it")
    val_frames = validation_frames(dataset_dir, cfg)
    plan = crop_plan(dataset_dir, cfg)

    generator = build_generator(cfg.generator)
    discriminator = build_discriminator(cfg.discriminator)
    model = SRGAN(generator, discriminator)
    # Built before any weights are loaded into them (warm start, resume).
    sample_lr = np.zeros((1, 8, 8, 3 * (2 * cfg.generator.window + 1)), np.float32)
    discriminator(generator(sample_lr))
    if init is not None:
        warm_start(generator, init)
    ckpt_dir = work_dir / "checkpoint"  # read on resume
    state = load_checkpoint_state(ckpt_dir) if resume else None
    # A resumed run continues the crop stream where its checkpoint left it.
    drawn = state.get("extra", {}).get("crops_drawn", 0) if state else 0
    train_ds = make_tf_dataset(plan, cfg.batch_size, cfg.seed, start=drawn)
    # Crops are drawn in memory, there are no files to shard by: each worker keeps its share of
    # every batch (AUTO would try files first and warn on every multi-worker run).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds = train_ds.with_options(options)

    history: list[dict] = []
    best: dict = {}
    extra: dict = {}
    start = 0
    if state is not None:
        start, history, best = state["epochs_done"], state["history"], state["best"]
        extra = state.get("extra", {})
        generator.load_weights(ckpt_dir / "generator.weights.h5")
        discriminator.load_weights(ckpt_dir / "discriminator.weights.h5")

    clock = Clock(extra.get("elapsed_s", 0.0), drawn // cfg.batch_size)
    validation = WholeFrameValidation(val_frames, cfg.generator.scale)
    samples = SampleImages(validation, write_dir / "samples", cfg.sample_every)
    budget = cfg.minutes * 60 if cfg.minutes else None
    patience = cfg.early_stopping_patience or (None if budget else DEFAULT_PATIENCE)
    checkpoint = Checkpoint(write_dir / "checkpoint", history, best, patience)
    checkpoint.extra, checkpoint.clock, checkpoint.batch_size = extra, clock, cfg.batch_size
    # Order matters: validation writes val_* into the logs the later callbacks read.
    core = [validation, samples, checkpoint]
    gan = cfg.gan_epochs > 0
    open_ended = 100_000  # epochs of a phase that the clock ends
    if budget:
        # With a budget, epochs cap only where the user set them (`--minutes 10` alone trains
        # for ten minutes, not for a default epoch count).
        pixel_end = cfg.pretrain_epochs or open_ended
        total = pixel_end + (open_ended if gan else 0)
        pixel_deadline = budget * (1 - cfg.gan_share) if gan else budget
    else:
        epochs = DEFAULT_PRETRAIN_EPOCHS if cfg.pretrain_epochs is None else cfg.pretrain_epochs
        pixel_end, total, pixel_deadline = epochs, epochs + cfg.gan_epochs, None
    steps = cfg.steps_per_epoch
    progress_cb = [EpochProgress(steps, None if budget else total, progress)]

    if start < pixel_end and not extra.get("pixel_done"):
        if budget:
            g_opt = keras.optimizers.Adam(cfg.learning_rate)
            timing = [TimeBudget(clock, g_opt, cfg, 0.0, pixel_deadline, cfg.learning_rate)]
        else:
            g_opt = _pixel_optimizer(cfg, pixel_end * steps)
            timing = [clock.callback()]
        model.compile(g_opt, None, mode="pixel", jit_compile=_use_xla(cfg))
        if state is not None:
            _restore_optimizer(g_opt, ckpt_dir / "g_optimizer.npz")
        model.fit(
            train_ds,
            epochs=pixel_end,
            initial_epoch=start,
            steps_per_epoch=steps,
            callbacks=[*timing, *core, *callbacks, *progress_cb],
            verbose=0,
        )
        if checkpoint.best_weights is not None:
            generator.set_weights(checkpoint.best_weights)
        start = len(history)
        if checkpoint.stopped_early and not budget:
            # Later epochs were not better: the adversarial phase starts from the best weights,
            # at its own first epoch.
            start = max(start, pixel_end)
        extra["pixel_done"] = True
    if gan and scorer is not None and "bench_psnr_pixel" not in extra:
        # The yardstick of the adversarial phase (see _gan_guard), kept across resumes.
        extra["bench_psnr_pixel"] = float(scorer(generator))
        generator.save_weights(write_dir / "pixel_phase.weights.h5")
        save_checkpoint(checkpoint.folder, model, start, history, best,
                        {**extra, "elapsed_s": clock.elapsed(),
                         "crops_drawn": clock.steps * cfg.batch_size})  # fmt: skip

    if gan and start < total and (not budget or clock.elapsed() < budget):
        checkpoint.phase = "adversarial"
        _adversarial_phase(model, cfg, train_ds, start, total, steps, ckpt_dir, state,
                           [*core, *callbacks, *progress_cb], clock, budget)  # fmt: skip

    gan_check = _gan_guard(generator, cfg, scorer, extra, write_dir) if gan else {}
    final = validation.score(generator)
    ended_by = _ended_by(cfg, clock, checkpoint, budget, pixel_end, patience)
    if progress:
        print(f"training ended by {ended_by} after {clock.elapsed() / 60:.1f} min, "
              f"{clock.steps} steps, {len(history)} epochs", flush=True)  # fmt: skip
    return TrainResult(
        generator=generator,
        history=history,
        epochs_done=len(history),
        final=final,
        stopped_early=checkpoint.stopped_early,
        checkpoint_dir=write_dir / "checkpoint",
        gan_check=gan_check,
        elapsed_s=clock.elapsed(),
        steps=clock.steps,
        ended_by=ended_by,
    )


def _ended_by(cfg: TrainConfig, clock, checkpoint, budget, pixel_end: int, patience) -> str:
    """Which limit ended the run, in words (printed, and the run's ``ended_by`` tag)."""
    adversarial = cfg.gan_epochs > 0 and checkpoint.phase == "adversarial"
    if checkpoint.stopped_early and not adversarial:
        return f"early stopping (no better val_psnr in {patience} epochs)"
    if budget and clock.deadline_hit is not None and clock.deadline_hit >= budget:
        return f"the time budget ({cfg.minutes:g} min)"
    what = "the epoch cap" if budget else "the epoch count"
    gan = f", gan_epochs {cfg.gan_epochs}" if cfg.gan_epochs else ""
    return f"{what} (pretrain_epochs {pixel_end}{gan})"


def warm_start(generator, init) -> None:
    """Copy the weights of ``init`` (a generator of the same tier and scale) into ``generator``.

    Generators saved before the bicubic skip became a convolution hold the same weights (the
    skip has none), so they warm-start the current architecture too.

    Raises:
        VideoBoostError: the architectures differ (tier, width, blocks or scale).
    """
    source = [w for w in init.weights]
    target = [w for w in generator.weights]
    shapes_s = [tuple(w.shape) for w in source]
    shapes_t = [tuple(w.shape) for w in target]
    if shapes_s != shapes_t:
        raise VideoBoostError(
            f"--init model {init.name} does not match the generator being trained "
            f"({generator.name}, {generator.count_params():,} parameters, vs "
            f"{init.count_params():,}): warm start needs the same tier, width, blocks and scale; "
            "pass matching --tier/--scale/--config or train from scratch without --init"
        )
    for dst, src in zip(target, source, strict=True):
        dst.assign(np.asarray(src))


def _adversarial_phase(model, cfg, train_ds, start, total, steps, ckpt_dir, state, cbs, clock,
                       budget) -> None:  # fmt: skip
    from models.losses import build_feature_extractor

    g_opt = keras.optimizers.Adam(cfg.gan_learning_rate, beta_1=0.9)
    d_opt = keras.optimizers.Adam(cfg.gan_learning_rate, beta_1=0.9)
    extractor = build_feature_extractor(cfg.vgg_weights) if cfg.perceptual_weight > 0 else None
    if cfg.pretrain_discriminator_steps and not (state or {}).get("extra", {}).get("gan_started"):
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
        jit_compile=_use_xla(cfg),
    )
    if state is not None and state.get("extra", {}).get("gan_started"):
        _restore_optimizer(g_opt, ckpt_dir / "g_optimizer.npz")
        _restore_optimizer(d_opt, ckpt_dir / "d_optimizer.npz")
    checkpoint = next(c for c in cbs if isinstance(c, Checkpoint))
    checkpoint.extra["gan_started"] = True
    timing = [TimeBudget(clock, None, cfg, 0.0, budget, None)] if budget else [clock.callback()]
    model.fit(
        train_ds,
        epochs=total,
        initial_epoch=start,
        steps_per_epoch=steps,
        callbacks=[*timing, *cbs],
        verbose=0,
    )


def _deterministic(cfg: TrainConfig) -> bool:
    # A run the clock ends is not repeatable anyway (its last step depends on the machine's
    # speed), so it does not pay for op determinism, which also rules XLA out in Keras.
    return cfg.deterministic and cfg.minutes is None


def _use_xla(cfg: TrainConfig) -> bool:
    # Keras refuses XLA under op determinism; only measured (and tested) on one device, so
    # tf.distribute keeps the plain graph.
    return cfg.jit_compile and cfg.strategy == "default" and not _deterministic(cfg)


def _gan_guard(generator, cfg: TrainConfig, scorer, extra: dict, write_dir: Path) -> dict:
    """Keep the adversarial phase only if it costs at most ``gan_max_loss_db`` on the benchmark.

    Returns ``{"bench_psnr_pixel", "bench_psnr_gan", "kept"}`` (``kept`` is ``"adversarial"`` or
    ``"pixel"``); empty without a scorer or a finished pixel phase.
    """
    pixel_weights = write_dir / "pixel_phase.weights.h5"
    ran = extra.get("gan_started") and "bench_psnr_pixel" in extra
    if scorer is None or not ran or not pixel_weights.is_file():
        return {}
    before = extra["bench_psnr_pixel"]
    after = float(scorer(generator))
    kept = "adversarial"
    if after < before - cfg.gan_max_loss_db:
        generator.load_weights(pixel_weights)
        kept = "pixel"
        print(
            f"adversarial phase cost {before - after:.2f} dB on the held-out benchmark "
            f"(> {cfg.gan_max_loss_db} dB allowed): keeping the pixel-phase weights",
            file=sys.stderr,
            flush=True,
        )
    return {"bench_psnr_pixel": before, "bench_psnr_gan": after, "kept": kept}
