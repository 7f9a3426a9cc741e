"""Custom Keras layers of the VideoBoost networks.

Every layer here is registered with Keras under the ``videoboost`` package, so a saved
``.keras`` file loads in a fresh process once this module has been imported (importing
``models.networks`` does that). No ``Lambda`` layers: they do not survive a save/load round
trip portably.
"""

from __future__ import annotations

from typing import Any

import keras
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
