"""Custom Keras layers of the VideoBoost networks.

Every layer here is registered with Keras under the ``videoboost`` package, so a saved
``.keras`` file loads in a fresh process once this module has been imported (importing
``models.networks`` does that). No ``Lambda`` layers: they do not survive a save/load round
trip portably.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="videoboost")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel upsampling (``depth_to_space``): trades channels for resolution.

    Args:
        scale: Integer upsampling factor ``s`` (>= 1).

    Input: ``(batch, H, W, C * s * s)`` channels-last tensor, any range.
    Output: ``(batch, H * s, W * s, C)``, same dtype and range.
    """

    def __init__(self, scale: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(scale) != scale or scale < 1:
            raise ValueError(f"PixelShuffle scale must be a positive integer, got {scale!r}")
        self.scale = int(scale)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.nn.depth_to_space(inputs, self.scale)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        batch, height, width, channels = input_shape
        s = self.scale
        if channels is not None and channels % (s * s):
            raise ValueError(
                f"PixelShuffle({s}) needs channels divisible by {s * s}, got {channels}"
            )
        return (
            batch,
            None if height is None else height * s,
            None if width is None else width * s,
            None if channels is None else channels // (s * s),
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale}


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.5: what ``tf.image.resize`` uses for bicubic)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def bicubic_phase_weights(scale: int) -> np.ndarray:
    """``(scale, 5)`` 1-D weights: output phase ``p`` of an integer bicubic upscale as taps at
    input offsets -2..2 (half-pixel centres: phase p samples at ``i + (p + 0.5) / s - 0.5``)."""
    offsets = np.arange(-2, 3, dtype=np.float64)
    phases = (np.arange(scale) + 0.5) / scale - 0.5
    # TF looks the weights up in a 1024-entry table, rounding the fractional position;
    # doing the same keeps x3 equal to the resize op, not 0.15 grey levels off.
    floor = np.floor(phases)
    phases = floor + np.rint((phases - floor) * 1024) / 1024
    return _keys_cubic(offsets[None, :] - phases[:, None])


@keras.saving.register_keras_serializable(package="videoboost")
class BicubicSubpixels(keras.layers.Layer):
    """Bicubic upsampling by an integer ``scale``, as sub-pixel channels.

    A fixed 5x5 convolution turns ``(B, H, W, C)`` into ``(B, H, W, C * s * s)`` in
    ``depth_to_space`` order, so it can be added to a learned sub-pixel head before one
    :class:`PixelShuffle`. After the shuffle it equals ``tf.image.resize(x, (s*H, s*W),
    "bicubic")`` (Keras' ``UpSampling2D(s, interpolation="bicubic")``), borders included: TF
    gives taps outside the image zero weight and renormalises the rest, which is the zero-padded
    convolution divided by the same convolution of ones.

    Unlike ``UpSampling2D``, this traces once for any height and width (plain convolutions), and
    it costs a fraction of the resize op in training.
    """

    def __init__(self, scale: int, channels: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(scale) != scale or scale < 1:
            raise ValueError(f"BicubicSubpixels scale must be a positive integer, got {scale!r}")
        self.scale, self.channels = int(scale), int(channels)
        s, c = self.scale, self.channels
        w = bicubic_phase_weights(s)  # (s, 5)
        # taps[dy, dx, i, j] = weight of input offset (dy, dx) for output phase (i, j)
        taps = np.einsum("iy,jx->yxij", w, w).reshape(5, 5, s * s)
        kernel = np.zeros((5, 5, c, s * s * c), np.float32)
        for ch in range(c):
            kernel[:, :, ch, ch::c] = taps  # depth_to_space channel = (i * s + j) * c + ch
        self._kernel = kernel
        self._norm = taps[:, :, None, :].astype(np.float32)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = tf.cast(inputs, tf.float32)
        out = tf.nn.conv2d(x, tf.constant(self._kernel), 1, "SAME")
        # Weight actually inside the image per phase: 1 away from the border.
        ones = tf.ones(tf.concat([[1], tf.shape(x)[1:3], [1]], axis=0), tf.float32)
        norm = tf.nn.conv2d(ones, tf.constant(self._norm), 1, "SAME")
        out = out / tf.repeat(norm, self.channels, axis=-1)
        return tf.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        batch, height, width, channels = input_shape
        return (batch, height, width, None if channels is None else channels * self.scale**2)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "channels": self.channels}


@keras.saving.register_keras_serializable(package="videoboost")
class CentreFrame(keras.layers.Layer):
    """The first three channels of a stacked window: the frame being upscaled (video tier)."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return inputs[..., :3]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], 3)
