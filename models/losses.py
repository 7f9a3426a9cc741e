"""Named loss functions for VideoBoost training.

Images are float tensors ``(B, H, W, 3)`` RGB in [0, 255]; pixel losses divide by 255 inside
so their magnitudes read the same in every run. Discriminator outputs are logit maps
``(B, h, w, 1)`` (any ``h, w``). Every loss returns a scalar: the mean over all its elements,
i.e. over the (local) batch. ``gan_type`` is ``"standard"`` (non-saturating GAN) or
``"ragan"`` (relativistic average GAN, as in ESRGAN / BasicSR).

Under ``tf.distribute`` each replica sees a slice of the global batch. The losses stay local
means (the train step scales them by the replica count), except the RaGAN "average" logits,
which are taken over the global batch (:func:`global_batch_mean`), so the loss, and the model it
trains, does not depend on how many replicas share the batch.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

GAN_TYPES = ("standard", "ragan")


def pixel_loss(hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
    """Mean absolute error on the [0, 1] scale.

    Args:
        hr: Target ``(B, H, W, 3)`` in [0, 255].
        sr: Prediction, same shape, ~[0, 255].

    Returns:
        Scalar float32; e.g. a uniform difference of 51 grey levels gives 0.2.
    """
    hr = tf.cast(hr, tf.float32)
    sr = tf.cast(sr, tf.float32)
    return tf.reduce_mean(tf.abs(hr - sr)) / 255.0


def global_batch_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean of ``x`` over the global batch.

    Inside a ``tf.distribute`` step with several replicas: the mean of every replica's local mean
    (an all-reduce; exact because ``fit`` gives each replica an equal slice, and differentiable:
    its gradient is the all-reduce of the gradients). Otherwise simply ``reduce_mean(x)``.
    """
    mean = tf.reduce_mean(tf.cast(x, tf.float32))
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return mean
    return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, mean)


def _bce(logits: tf.Tensor, target: float) -> tf.Tensor:
    """Mean sigmoid cross-entropy of ``logits`` against a constant label (0 or 1)."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), tf.constant(target, tf.float32))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def _check_gan_type(gan_type: str) -> None:
    if gan_type not in GAN_TYPES:
        raise ValueError(f"unknown gan_type {gan_type!r}; valid: {', '.join(GAN_TYPES)}")


def generator_adversarial_loss(
    real_logits: tf.Tensor | None, fake_logits: tf.Tensor, gan_type: str = "ragan"
) -> tf.Tensor:
    """Adversarial loss of the generator.

    ``standard``: ``-mean(log sigmoid(fake))`` (non-saturating; ``real_logits`` unused).
    ``ragan``: ``(BCE(real - mean(fake), 0) + BCE(fake - mean(real), 1)) / 2``; the generator
    also profits from making real images look *less* real relative to its output.

    Args:
        real_logits: D logits on HR images ``(B, h, w, 1)``, treated as constants for the G
            step; only ``ragan`` reads them (``standard`` accepts ``None``).
        fake_logits: D logits on generator output, same shape.
        gan_type: ``"standard"`` or ``"ragan"``.

    Returns:
        Scalar float32.
    """
    _check_gan_type(gan_type)
    if gan_type == "standard":
        return _bce(fake_logits, 1.0)
    if real_logits is None:
        raise ValueError("the ragan generator loss needs real_logits")
    real_logits = tf.cast(real_logits, tf.float32)
    fake_logits = tf.cast(fake_logits, tf.float32)
    real_rel = real_logits - global_batch_mean(fake_logits)
    fake_rel = fake_logits - global_batch_mean(real_logits)
    return 0.5 * (_bce(real_rel, 0.0) + _bce(fake_rel, 1.0))


def discriminator_loss(
    real_logits: tf.Tensor, fake_logits: tf.Tensor, gan_type: str = "ragan"
) -> tf.Tensor:
    """Loss of the discriminator (real HR labelled 1, generator output labelled 0).

    ``standard``: ``BCE(real, 1) + BCE(fake, 0)`` =
    ``-mean(log sigmoid(real)) - mean(log sigmoid(-fake))`` (BasicSR sums the two halves).
    ``ragan``: ``(BCE(real - mean(fake), 1) + BCE(fake - mean(real), 0)) / 2`` (ESRGAN).

    Args:
        real_logits: D logits on HR images ``(B, h, w, 1)``.
        fake_logits: D logits on generator output (gradient must not reach G), same shape.
        gan_type: ``"standard"`` or ``"ragan"``.

    Returns:
        Scalar float32.
    """
    _check_gan_type(gan_type)
    real_logits = tf.cast(real_logits, tf.float32)
    fake_logits = tf.cast(fake_logits, tf.float32)
    if gan_type == "standard":
        return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
    real_rel = real_logits - global_batch_mean(fake_logits)
    fake_rel = fake_logits - global_batch_mean(real_logits)
    return 0.5 * (_bce(real_rel, 1.0) + _bce(fake_rel, 0.0))


def build_feature_extractor(vgg_weights_path: str | Path) -> keras.Model:
    """Frozen VGG19 truncated at ``block5_conv4``, for the perceptual loss.

    Never downloads anything: the ImageNet weights must already be on disk (Keras'
    ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` or a ``.weights.h5`` file of the
    same architecture).

    Args:
        vgg_weights_path: Local path of VGG19 no-top weights.

    Returns:
        Model mapping VGG-preprocessed ``(B, H, W, 3)`` images (see :func:`perceptual_loss`) to
        ``(B, H/16, W/16, 512)`` features (post-ReLU of ``block5_conv4``); not trainable.

    Raises:
        FileNotFoundError: ``vgg_weights_path`` is not an existing file.
    """
    if vgg_weights_path is None:
        raise FileNotFoundError("a local VGG19 weights file is required (got None)")
    path = Path(vgg_weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG19 weights file {path} does not exist (never downloaded)")
    vgg = keras.applications.VGG19(
        include_top=False, weights=str(path), input_shape=(None, None, 3)
    )
    extractor = keras.Model(
        vgg.input, vgg.get_layer("block5_conv4").output, name="vgg19_block5_conv4"
    )
    extractor.trainable = False
    return extractor


def perceptual_loss(extractor: keras.Model, hr: tf.Tensor, sr: tf.Tensor) -> tf.Tensor:
    """L1 distance between VGG features of ``hr`` and ``sr``.

    Args:
        extractor: From :func:`build_feature_extractor` (any model taking VGG-preprocessed
            images works).
        hr: Target ``(B, H, W, 3)`` RGB in [0, 255].
        sr: Prediction, same shape, ~[0, 255].

    Returns:
        Scalar float32, mean absolute feature difference.
    """
    # VGG19 expects caffe-style input: BGR, ImageNet mean subtracted, 0-255 scale.
    hr_in = keras.applications.vgg19.preprocess_input(tf.cast(hr, tf.float32))
    sr_in = keras.applications.vgg19.preprocess_input(tf.cast(sr, tf.float32))
    hr_feat = tf.stop_gradient(extractor(hr_in, training=False))
    sr_feat = extractor(sr_in, training=False)
    return tf.reduce_mean(tf.abs(tf.cast(hr_feat, tf.float32) - tf.cast(sr_feat, tf.float32)))
