"""Generator and discriminator builders: a config in, a ``keras.Model`` out.

Generator I/O contract (every tier):
    input  ``(batch, H, W, 3)`` float32 RGB in the uint8 range [0, 255] (raw frames);
    output ``(batch, H * scale, W * scale, 3)`` float32 RGB, roughly [0, 255].

The output is deliberately not clipped (clipping zeroes the gradient of saturated pixels);
callers clip when they convert to uint8. Normalisation lives inside the graph so an exported
generator needs no pre/post-processing code next to it.

Every generator predicts a residual over the bicubic upsampling of its input, and its last
convolution starts at zero, so a freshly built generator *is* bicubic upsampling. Training can
only move it away from that baseline; with plain ReLU and default init the fast net was seen to
die and collapse onto the bicubic skip, which PReLU plus the zero-initialised last conv fixed.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

# Importing models.layers also registers its layers, so loading a .keras file works.
from models.layers import BicubicSubpixels, CentreFrame, PixelShuffle
from videoboost.config import DiscriminatorConfig, GeneratorConfig

__all__ = [
    "GENERATORS",
    "build_discriminator",
    "build_fast",
    "build_generator",
    "build_quality",
    "build_video",
]


def _prelu(name: str | None = None) -> keras.layers.PReLU:
    # One alpha per channel (shared over H and W) so the net stays size-agnostic; starting at
    # 0.1 instead of 0 keeps negative units alive early in training.
    return keras.layers.PReLU(
        alpha_initializer=keras.initializers.Constant(0.1), shared_axes=[1, 2], name=name
    )


def _conv(filters: int, kernel: int, name: str | None = None, **kwargs) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(filters, kernel, padding="same", name=name, **kwargs)


def _upsample_head(x: keras.KerasTensor, lr01: keras.KerasTensor, scale: int) -> keras.KerasTensor:
    """Turn trunk features into the [0, 255] output: sub-pixel residual plus bicubic skip.

    The bicubic skip is a fixed convolution into the same sub-pixel channels as the learned
    head, so one pixel shuffle serves both and the graph traces once for any frame size (Keras'
    bicubic ``UpSampling2D`` cannot, and its resize op made training steps ~1.5x slower).
    """
    # Zero kernel (and zero bias): the residual is exactly 0 at init, so output == bicubic.
    x = _conv(3 * scale * scale, 3, name="to_subpixels", kernel_initializer="zeros")(x)
    # The skip carries the whole picture: it stays float32 under a mixed-precision policy
    # (bfloat16 keeps 8 significant bits, about a grey level at the top of the range); only the
    # trunk and the residual it predicts run in the policy's compute type.
    skip = BicubicSubpixels(scale, name="bicubic_subpixels", dtype="float32")(lr01)
    x = keras.layers.Add(name="add_bicubic", dtype="float32")([x, skip])
    x = PixelShuffle(scale, name="pixel_shuffle", dtype="float32")(x)
    return keras.layers.Rescaling(255.0, name="to_255", dtype="float32")(x)


def _generator_input(channels: int = 3) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    lr = keras.Input(shape=(None, None, channels), dtype="float32", name="lr")
    # float32 under any policy: the bicubic skip reads it (see _upsample_head).
    return lr, keras.layers.Rescaling(1.0 / 255.0, name="to_unit", dtype="float32")(lr)


def _damage_code(x0: keras.KerasTensor, width: int) -> keras.KerasTensor:
    """A blind estimate of how damaged the input is, ``(B, 1, 1, width)``, from its pixels alone.

    A decoded PNG carries no codec metadata, so what the network is told about its input must
    come from the pixels: two strided convs see blocking, ringing, noise and blur at LR and
    2x-coarser scale, and a global average pools them into one code per image (per tile when
    the engine tiles). Nothing labels it: training shapes the code into whatever tells the
    blocks how hard to restore (a learned global descriptor, as in degradation-aware SR).
    """
    y = _prelu("damage_prelu0")(_conv(16, 3, name="damage_conv0", strides=2)(x0))
    y = _prelu("damage_prelu1")(_conv(16, 3, name="damage_conv1", strides=2)(y))
    y = keras.layers.GlobalAveragePooling2D(keepdims=True, name="damage_pool")(y)
    return _prelu("damage_code_prelu")(keras.layers.Dense(width, name="damage_code")(y))


def _modulate(x: keras.KerasTensor, code: keras.KerasTensor | None, name: str) -> keras.KerasTensor:
    """Scale ``x``'s channels by a function of the damage code (FiLM, scale only). The scale
    starts at exactly 1 (zero kernel, unit bias), so a conditioned generator starts as the
    unconditioned one and can load its weights by layer name."""
    if code is None:
        return x
    scale = keras.layers.Dense(x.shape[-1], kernel_initializer="zeros", bias_initializer="ones",
                               name=f"{name}_scale")(code)  # fmt: skip
    return keras.layers.Multiply(name=f"{name}_film")([x, scale])


def _fast_trunk(
    x0: keras.KerasTensor, cfg: GeneratorConfig, code: keras.KerasTensor | None = None
) -> keras.KerasTensor:
    x = _prelu("prelu0")(_conv(cfg.filters, 3, name="conv0")(x0))
    for i in range(1, cfg.blocks + 1):
        x = _modulate(_prelu(f"prelu{i}")(_conv(cfg.filters, 3, name=f"conv{i}")(x)), code,
                      f"conv{i}")  # fmt: skip
    return x


def _quality_trunk(
    x0: keras.KerasTensor, cfg: GeneratorConfig, code: keras.KerasTensor | None = None
) -> keras.KerasTensor:
    head = _conv(cfg.filters, 3, name="head")(x0)
    x = head
    for i in range(cfg.blocks):
        y = _conv(cfg.filters, 3, name=f"block{i}_conv1")(x)
        y = _prelu(f"block{i}_prelu")(y)
        y = _conv(cfg.filters, 3, name=f"block{i}_conv2")(y)
        y = _modulate(y, code, f"block{i}")
        x = keras.layers.Add(name=f"block{i}_add")([x, y])
    x = _conv(cfg.filters, 3, name="trunk_out")(x)
    return keras.layers.Add(name="long_skip")([head, x])


def build_fast(cfg: GeneratorConfig) -> keras.Model:
    """Real-time generator: a plain stack of 3x3 convolutions, pixel shuffle, bicubic skip.

    Layers: conv3x3 -> ``filters``, PReLU; ``blocks`` x (conv3x3 -> ``filters``, PReLU);
    conv3x3 -> ``3 * s * s`` (zero init), PixelShuffle(s), + bicubic(input). About 42 k
    parameters at ``filters=32, blocks=3, scale=4``.

    Why not ESPCN's layout (5x5 -> 64, 3x3 -> 32)? For 14 % more multiply-adds per pixel,
    five thin 3x3 layers see further (11x11 LR pixels against 9x9) through more
    non-linearities, and gained 0.2 dB more over bicubic on the held-out benchmark after the
    same 3 minutes of training (README, "Training benchmark"). Generators saved with the old
    layout are complete ``.keras`` files and still load and serve.

    Args:
        cfg: Generator settings; uses ``scale``, ``filters`` and ``blocks``.

    Returns:
        Model mapping ``(B, H, W, 3)`` in [0, 255] to ``(B, H*s, W*s, 3)`` in ~[0, 255],
        named ``videoboost_fast_x{s}``.
    """
    lr, x0 = _generator_input()
    code = _damage_code(x0, cfg.damage_code) if cfg.damage_code else None
    sr = _upsample_head(_fast_trunk(x0, cfg, code), x0, cfg.scale)
    return keras.Model(lr, sr, name=f"videoboost_fast_x{cfg.scale}")


def build_quality(cfg: GeneratorConfig) -> keras.Model:
    """Residual generator (SRResNet/EDSR-lite, no batch norm), pixel shuffle, bicubic skip.

    Layers: conv3x3 -> ``filters``; ``blocks`` x (conv3x3, PReLU, conv3x3, add);
    conv3x3 + long skip from the first conv; conv3x3 -> ``3 * s * s`` (zero init);
    PixelShuffle(s); + bicubic(input). About 172 k parameters at
    ``filters=32, blocks=8, scale=4``. With ``damage_code`` > 0, each block's residual is
    scaled per channel by a blind estimate of the input's damage (:func:`_damage_code`).

    Args:
        cfg: Generator settings; uses ``scale``, ``filters``, ``blocks`` and ``damage_code``.

    Returns:
        Model mapping ``(B, H, W, 3)`` in [0, 255] to ``(B, H*s, W*s, 3)`` in ~[0, 255],
        named ``videoboost_quality_x{s}``.
    """
    lr, x0 = _generator_input()
    code = _damage_code(x0, cfg.damage_code) if cfg.damage_code else None
    sr = _upsample_head(_quality_trunk(x0, cfg, code), x0, cfg.scale)
    return keras.Model(lr, sr, name=f"videoboost_quality_x{cfg.scale}")


def build_video(cfg: GeneratorConfig) -> keras.Model:
    """Video generator: a window of ``2k + 1`` aligned LR frames fused early into a trunk.

    The input is the window stacked along channels, centre frame first (see
    :mod:`videoboost.data.align`, which aligns the neighbours to the centre with optical flow before
    the model runs). The trunk (``cfg.trunk``: the fast or quality kind, ``filters`` wide,
    ``blocks`` deep) starts from all ``3 * (2k + 1)`` channels at once (VESPCN's early fusion:
    the cheapest fusion, its only extra cost is the first conv's input width); the head and
    the bicubic skip are the single-frame tiers', the skip taken from the centre frame. A
    freshly built video generator is therefore bicubic upsampling of the centre frame, like
    the others, and a still fed as a repeated frame is a valid input.

    Args:
        cfg: Generator settings; uses ``scale``, ``filters``, ``blocks``, ``window``, ``trunk``.

    Returns:
        Model mapping ``(B, H, W, 3 * (2k + 1))`` in [0, 255] to ``(B, H*s, W*s, 3)``, named
        ``videoboost_video{k}_x{s}``. About 44 k parameters at the fast trunk's defaults, k=1.
    """
    k = cfg.window
    lr, x0 = _generator_input(3 * (2 * k + 1))
    centre = CentreFrame(name="centre_frame", dtype="float32")(x0)
    trunk = _fast_trunk if cfg.trunk == "fast" else _quality_trunk
    sr = _upsample_head(trunk(x0, cfg), centre, cfg.scale)
    model = keras.Model(lr, sr, name=f"videoboost_video{k}_x{cfg.scale}")
    # Start as the single-frame tier: the first conv's centre weights are drawn as the fast
    # tier draws them (Glorot over 3 input channels), its neighbour weights are zero, so a
    # fresh video generator computes exactly what a fresh fast one does and training adds
    # what the aligned neighbours are worth. Drawn over all 9 channels, the neighbours fed
    # random features from the first step (two 5.5-minute runs on a loaded machine: +0.90
    # against +0.94 dB on the clean track, +0.70 against +0.71 on the video track).
    first = model.get_layer("conv0" if cfg.trunk == "fast" else "head")
    kernel = np.zeros(first.kernel.shape, np.float32)
    glorot = keras.initializers.GlorotUniform(seed=cfg.filters)
    kernel[:, :, :3, :] = np.asarray(glorot((3, 3, 3, cfg.filters)))
    first.kernel.assign(kernel)
    return model


GENERATORS: dict[str, Callable[[GeneratorConfig], keras.Model]] = {
    "fast": build_fast,
    "quality": build_quality,
    "video": build_video,
}


def build_generator(cfg: GeneratorConfig) -> keras.Model:
    """Build the generator of tier ``cfg.tier`` (see :data:`GENERATORS`).

    Raises:
        ValueError: ``cfg.tier`` is not a key of :data:`GENERATORS`.
    """
    try:
        builder = GENERATORS[cfg.tier]
    except KeyError:
        raise ValueError(
            f"unknown generator tier {cfg.tier!r}; valid tiers: {', '.join(sorted(GENERATORS))}"
        ) from None
    return builder(cfg)


def build_discriminator(cfg: DiscriminatorConfig) -> keras.Model:
    """VGG-style patch discriminator (no batch norm).

    ``blocks`` x (conv3x3 stride 1, LeakyReLU 0.2, conv3x3 stride 2, LeakyReLU 0.2), the width
    starting at ``filters`` and doubling every block, then a 3x3 conv to one channel. Being fully
    convolutional, it scores any HR patch size.

    Args:
        cfg: Discriminator settings (``filters``, ``blocks``).

    Returns:
        Model mapping ``(B, H, W, 3)`` RGB in [0, 255] to a logit map
        ``(B, ceil(H / 2**blocks), ceil(W / 2**blocks), 1)`` (unbounded; > 0 means "real").
    """
    hr = keras.Input(shape=(None, None, 3), dtype="float32", name="image")
    # Centred input ([-1, 1]) suits a net without normalisation layers better than [0, 1].
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_signed_unit")(hr)
    for i in range(cfg.blocks):
        width = cfg.filters * 2**i
        x = _conv(width, 3, name=f"block{i}_conv")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"block{i}_lrelu")(x)
        x = _conv(width, 3, name=f"block{i}_down", strides=2)(x)
        x = keras.layers.LeakyReLU(0.2, name=f"block{i}_down_lrelu")(x)
    logits = _conv(1, 3, name="logits", dtype="float32")(x)  # losses in float32
    return keras.Model(hr, logits, name="videoboost_discriminator")
