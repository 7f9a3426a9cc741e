"""The adversarial training model: a ``keras.Model`` whose ``train_step`` updates G and D.

Training runs in phases, each a ``compile`` + ``fit``:

1. ``mode="pixel"``: the generator alone, L1 pixel loss (PSNR-oriented pre-training).
2. ``mode="discriminator"`` (optional warm-up): D learns real HR against the current,
   frozen generator's output.
3. ``mode="adversarial"``: per step, first G on ``pixel_weight * L1 + adv_weight * adversarial
   (+ perceptual_weight * perceptual)``, then D on real HR vs the same step's (detached) output.
   This is BasicSR ``SRGANModel.optimize_parameters`` / ``ESRGANModel`` order.

The mode, loss weights and GAN type are plain Python attributes read while tracing
``train_step``; ``compile`` discards the traced functions, so changing any of them means calling
``compile`` again (which is also the only way to set them).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import keras
import tensorflow as tf

from models.losses import (
    GAN_TYPES,
    discriminator_loss,
    generator_adversarial_loss,
    perceptual_loss,
    pixel_loss,
)

Mode = Literal["pixel", "discriminator", "adversarial"]
MODES = ("pixel", "discriminator", "adversarial")
LOG_KEYS = ("g_loss", "d_loss", "pixel_loss", "adv_loss")


def _replica_scale(loss: tf.Tensor) -> tf.Tensor:
    """Turn a per-replica batch mean into its share of the global-batch mean.

    Under ``tf.distribute`` the optimizer all-reduces gradients by SUM over replicas (Keras'
    TF optimizer; Keras' own ``compute_loss`` scales the same way), so each replica's mean loss
    is divided by the replica count: what ``tf.nn.compute_average_loss`` does for the equal
    per-replica batches ``fit`` makes (``train`` requires a batch divisible by the replica
    count). The summed gradient is then the gradient of the global-batch mean, the same as on
    one device. The RaGAN averages are global too (:func:`models.losses.global_batch_mean`).
    Under the default strategy this divides by 1. Only the gradient is scaled; the trackers
    record the unscaled local mean, and their sync-on-read variables sum over replicas, so the
    logged epoch losses are global-batch means.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss / tf.cast(replicas, loss.dtype)


def _multi_worker() -> bool:
    """Whether ``fit`` runs under a MultiWorkerMirroredStrategy spanning several workers."""
    strategy = tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy.extended._in_multi_worker_mode()
    )


class SRGAN(keras.Model):
    """Generator + discriminator trained with ``fit`` on ``(lr, hr)`` batches.

    Args:
        generator: ``(B, H, W, 3)`` [0, 255] -> ``(B, H*s, W*s, 3)`` ~[0, 255]
            (see :mod:`models.networks`).
        discriminator: ``(B, H*s, W*s, 3)`` [0, 255] -> logit map ``(B, h, w, 1)``.

    Data for ``fit``/``evaluate``: ``(lr, hr)`` float32, ``lr`` ``(B, H, W, 3)`` and ``hr``
    ``(B, H*s, W*s, 3)``, both in [0, 255].

    Logs (``fit``, epoch means): ``g_loss``, ``d_loss``, ``pixel_loss``, ``adv_loss``
    (``adv_loss`` is the unweighted adversarial term; a term a mode does not compute is 0).
    ``evaluate`` logs ``pixel_loss`` and ``g_loss`` (= ``pixel_loss``).
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, **kwargs: Any):
        kwargs.setdefault("name", "srgan")
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        # Created once so fit() resets them each epoch via `metrics`; new trackers per compile
        # would mean new state objects after the model is built.
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.pixel_loss_tracker = keras.metrics.Mean(name="pixel_loss")
        self.adv_loss_tracker = keras.metrics.Mean(name="adv_loss")
        self.mode: str | None = None

    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer | None,
        d_optimizer: keras.optimizers.Optimizer | None,
        *,
        mode: Mode,
        pixel_weight: float = 1.0,
        adv_weight: float = 5e-3,
        perceptual_weight: float = 0.0,
        gan_type: str = "ragan",
        feature_extractor: keras.Model | None = None,
        jit_compile: bool = False,
        **kwargs: Any,
    ) -> None:
        """Configure one training phase.

        Args:
            g_optimizer: Generator optimizer; needed by ``pixel`` and ``adversarial``.
            d_optimizer: Discriminator optimizer; needed by ``discriminator`` and
                ``adversarial``.
            mode: ``"pixel"``, ``"discriminator"`` or ``"adversarial"`` (see module doc).
            pixel_weight: Weight of L1 in the adversarial-mode G loss. ``pixel`` mode minimises
                the unweighted L1 (the only term, so a weight would only rescale the step).
            adv_weight: Weight of the adversarial term in the G loss.
            perceptual_weight: Weight of the VGG perceptual term; > 0 needs
                ``feature_extractor``.
            gan_type: ``"standard"`` or ``"ragan"``.
            feature_extractor: From :func:`models.losses.build_feature_extractor`.
            jit_compile: XLA for the train step. Off by default, because the bicubic skip's
                resize op has no XLA kernel (tf2xla fails on it), while Keras' ``"auto"``
                would switch XLA on whenever a GPU is visible.
            **kwargs: Passed to ``keras.Model.compile`` (e.g. ``steps_per_execution``,
                ``run_eagerly``).

        Raises:
            ValueError: Unknown mode or gan_type, missing optimizer, or perceptual weight
                without an extractor.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if gan_type not in GAN_TYPES:
            raise ValueError(f"unknown gan_type {gan_type!r}; valid: {', '.join(GAN_TYPES)}")
        if mode in ("pixel", "adversarial") and g_optimizer is None:
            raise ValueError(f"mode {mode!r} needs a g_optimizer")
        if mode in ("discriminator", "adversarial") and d_optimizer is None:
            raise ValueError(f"mode {mode!r} needs a d_optimizer")
        if mode == "adversarial" and perceptual_weight > 0 and feature_extractor is None:
            raise ValueError("perceptual_weight > 0 needs a feature_extractor")

        # Build optimizer state now, eagerly, on exactly the variables each one updates; left
        # to fit() the main optimizer would get slots for G *and* D, and variables would be
        # created inside the traced step.
        for opt, net in ((g_optimizer, self.generator), (d_optimizer, self.discriminator)):
            if opt is not None and not opt.built:
                opt.build(net.trainable_variables)
        # `self.optimizer` is what callbacks (LR schedulers, TensorBoard) look at; the optimizer
        # of the network being trained fits that best.
        main = g_optimizer if mode != "discriminator" else d_optimizer
        super().compile(optimizer=main, jit_compile=jit_compile, **kwargs)

        self.mode = mode
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.pixel_weight = float(pixel_weight)
        self.adv_weight = float(adv_weight)
        self.perceptual_weight = float(perceptual_weight)
        self.gan_type = gan_type
        # Kept off Keras/TF attribute tracking (a partial is opaque to it) so the frozen VGG
        # never joins this model's weights or checkpoints.
        self._perceptual_fn = (
            functools.partial(perceptual_loss, feature_extractor)
            if feature_extractor is not None and self.perceptual_weight > 0
            else None
        )

    def _maybe_symbolic_build(self, iterator=None, data_batch=None) -> None:
        # Keras (TF backend) builds a model created under a tf.distribute strategy by pulling a
        # batch from a first iterator and then restarting it; the dataset reshuffles per
        # iterator, so a mirrored run would train on other batches than a one-device run. Nothing
        # is left to build here (networks are built at construction, optimizers in compile), so
        # skip it: every strategy then sees the same batches, as the default strategy does.
        return

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [
            self.g_loss_tracker,
            self.d_loss_tracker,
            self.pixel_loss_tracker,
            self.adv_loss_tracker,
        ]

    def call(self, lr: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Super-resolve ``lr`` ``(B, H, W, 3)`` [0, 255] to ``(B, H*s, W*s, 3)`` ~[0, 255]."""
        return self.generator(lr, training=training)

    def _d_step(self, hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
        # sr was produced outside this tape (and is detached anyway), so only D gets gradients.
        sr = tf.stop_gradient(sr)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(hr, training=True)
            fake_logits = self.discriminator(sr, training=True)
            d_loss = discriminator_loss(real_logits, fake_logits, self.gan_type)
            scaled = _replica_scale(d_loss)
        variables = self.discriminator.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.d_optimizer.apply_gradients(zip(grads, variables, strict=True))
        return d_loss

    def train_step(self, data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One optimisation step of the compiled mode.

        Args:
            data: ``(lr, hr)`` float32, ``(B, H, W, 3)`` and ``(B, H*s, W*s, 3)``, in [0, 255].

        Returns:
            ``{"g_loss", "d_loss", "pixel_loss", "adv_loss"}``: running means since the last
            metric reset (the epoch), as scalars.
        """
        if self.mode is None:
            raise RuntimeError("call compile(..., mode=...) before training")
        lr, hr = data
        lr = tf.cast(lr, tf.float32)
        hr = tf.cast(hr, tf.float32)
        zero = tf.constant(0.0, tf.float32)
        g_loss = d_loss = adv_loss = zero

        if self.mode == "pixel":
            with tf.GradientTape() as tape:
                sr = self.generator(lr, training=True)
                pix = pixel_loss(hr, sr)
                scaled = _replica_scale(pix)
            variables = self.generator.trainable_variables
            grads = tape.gradient(scaled, variables)
            self.g_optimizer.apply_gradients(zip(grads, variables, strict=True))
            g_loss = pix

        elif self.mode == "discriminator":
            # G is frozen here: its output is computed without a tape and never updated.
            sr = self.generator(lr, training=False)
            pix = pixel_loss(hr, sr)  # monitoring only
            d_loss = self._d_step(hr, sr)

        else:  # adversarial
            # G step first; D's weights are only read here (gradients taken w.r.t. G only).
            # ragan compares against D's opinion of real HR, which is a constant for G; the
            # standard loss does not look at real HR at all.
            real_logits = None
            if self.gan_type == "ragan":
                real_logits = tf.stop_gradient(self.discriminator(hr, training=False))
            with tf.GradientTape() as tape:
                sr = self.generator(lr, training=True)
                pix = pixel_loss(hr, sr)
                fake_logits = self.discriminator(sr, training=False)
                adv_loss = generator_adversarial_loss(real_logits, fake_logits, self.gan_type)
                g_loss = self.pixel_weight * pix + self.adv_weight * adv_loss
                if self._perceptual_fn is not None:
                    g_loss = g_loss + self.perceptual_weight * self._perceptual_fn(hr, sr)
                scaled = _replica_scale(g_loss)
            variables = self.generator.trainable_variables
            grads = tape.gradient(scaled, variables)
            self.g_optimizer.apply_gradients(zip(grads, variables, strict=True))
            # Then D on this step's output, detached so the D update cannot move G
            # (BasicSR reuses self.output from before the G update, as here).
            d_loss = self._d_step(hr, sr)

        self.g_loss_tracker.update_state(g_loss)
        self.d_loss_tracker.update_state(d_loss)
        self.pixel_loss_tracker.update_state(pix)
        self.adv_loss_tracker.update_state(adv_loss)
        logs = {m.name: m.result() for m in self.metrics}
        if _multi_worker():
            # Keras 3 reduces step outputs over workers with strategy.reduce(MEAN, v, axis=0),
            # which fails on scalars ("Invalid reduction dimension 0", tensorflow/tensorflow
            # #72388); shape (1,) reduces back to a scalar. Epoch logs come from the metrics.
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    def test_step(self, data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Pixel loss of the generator on ``(lr, hr)`` (both [0, 255]).

        Returns:
            ``{"g_loss", "pixel_loss"}`` running means (``g_loss`` equals ``pixel_loss``).
        """
        lr, hr = data
        sr = self.generator(tf.cast(lr, tf.float32), training=False)
        pix = pixel_loss(tf.cast(hr, tf.float32), sr)
        self.g_loss_tracker.update_state(pix)
        self.pixel_loss_tracker.update_state(pix)
        return {
            "g_loss": self.g_loss_tracker.result(),
            "pixel_loss": self.pixel_loss_tracker.result(),
        }
