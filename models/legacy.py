"""Bring generators saved before the convolutional bicubic skip into the current architecture.

Generators trained before issue 12 end in ``PixelShuffle`` + Keras'
``UpSampling2D(s, interpolation="bicubic")`` skip. Keras 3.15 cannot trace that layer with open
height and width (it tests a symbolic size as a Python bool), which once forced a per-shape
graph cache in the engine and a layer swap in the SavedModel export. Such models still sit in
registries, so instead of keeping both workarounds, a loaded old-style generator is rebuilt
with the current head (same tier, scale, width, depth; the fast tier in its own ESPCN layout,
5x5 -> filters, 3x3 -> filters // 2, which the fast builder no longer makes), its weights are
copied layer by layer by name (the skip has none), and the two are checked to agree before the
rebuilt one is used. The shuffle is a permutation and the fixed convolution equals the resize,
so ``shuffle(head) + resize(lr)`` and ``shuffle(head + subpixels(lr))`` are the same function.
"""

from __future__ import annotations

import keras
import numpy as np

from models.networks import _conv, _generator_input, _prelu, _upsample_head, build_generator
from videoboost.config import GeneratorConfig
from videoboost.errors import VideoBoostError

# Grey levels (of 255). Float32 sums in another order differ by ~1e-4; a wrong weight or a
# misread config is off by whole grey levels.
MAX_ABS_DIFF = 0.01


class LegacyModelError(VideoBoostError):
    """An old-style generator that cannot be rebuilt in the current architecture."""


def _bicubic_skips(model: keras.Model) -> list[keras.layers.UpSampling2D]:
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation != "nearest"
    ]


def is_legacy(model: keras.Model) -> bool:
    """True when ``model`` has an interpolating ``UpSampling2D`` (the pre-issue-12 skip)."""
    return bool(_bicubic_skips(model))


def legacy_config(model: keras.Model) -> GeneratorConfig:
    """The :class:`GeneratorConfig` an old-style generator was built from, read off its layers.

    Raises:
        LegacyModelError: it is not a VideoBoost generator (unknown layer names, odd skip).
    """
    skips = _bicubic_skips(model)
    names = {layer.name for layer in model.layers}
    size = tuple(skips[0].size) if len(skips) == 1 else ()
    if len(size) != 2 or size[0] != size[1] or skips[0].interpolation != "bicubic":
        raise LegacyModelError(
            f"{model.name}: expected one square bicubic UpSampling2D skip, found "
            f"{[(s.name, tuple(s.size), s.interpolation) for s in skips]}"
        )
    scale = int(size[0])
    if "conv1" in names and "conv2" in names:
        return GeneratorConfig(tier="fast", scale=scale, filters=model.get_layer("conv1").filters)
    if "head" in names:
        blocks = sum(1 for n in names if n.startswith("block") and n.endswith("_conv1"))
        return GeneratorConfig(
            tier="quality", scale=scale, filters=model.get_layer("head").filters, blocks=blocks
        )
    raise LegacyModelError(
        f"{model.name}: has a bicubic UpSampling2D but neither the fast (conv1, conv2) nor the "
        "quality (head, blockN_*) layer names; not a VideoBoost generator"
    )


def _espcn_fast(scale: int, filters: int) -> keras.Model:
    """The fast tier as it was when the bicubic skip was an ``UpSampling2D`` (ESPCN layout),
    with today's convolutional skip and shuffle. Layer names are the old ones."""
    lr, x0 = _generator_input()
    x = _prelu("prelu1")(_conv(filters, 5, name="conv1")(x0))
    x = _prelu("prelu2")(_conv(max(filters // 2, 1), 3, name="conv2")(x))
    return keras.Model(lr, _upsample_head(x, x0, scale), name=f"videoboost_fast_x{scale}")


def modernize(model: keras.Model, *, seed: int = 0) -> keras.Model:
    """``model`` itself if it is current, else its rebuild in the current architecture.

    The rebuild gets every weight of ``model`` by layer name, and both run on one random
    ``(1, 23, 19, 3)`` input (odd sizes: the borders and both phases count) that must agree
    within :data:`MAX_ABS_DIFF` grey levels.

    Raises:
        LegacyModelError: layers or weights do not line up, or the outputs differ.
    """
    if not is_legacy(model):
        return model
    cfg = legacy_config(model)
    new = _espcn_fast(cfg.scale, cfg.filters) if cfg.tier == "fast" else build_generator(cfg)
    old_weighted = {layer.name for layer in model.layers if layer.weights}
    new_weighted = {layer.name for layer in new.layers if layer.weights}
    if old_weighted != new_weighted:
        raise LegacyModelError(
            f"{model.name}: weighted layers differ from a rebuilt {cfg.tier} generator "
            f"(only old: {sorted(old_weighted - new_weighted)}, "
            f"only new: {sorted(new_weighted - old_weighted)})"
        )
    for name in sorted(new_weighted):
        try:
            new.get_layer(name).set_weights(model.get_layer(name).get_weights())
        except ValueError as exc:
            raise LegacyModelError(f"{model.name}: layer {name}: {exc}") from None
    lr = np.random.default_rng(seed).uniform(0, 255, (1, 23, 19, 3)).astype(np.float32)
    # Eager calls: the old model runs with a concrete size, which is all UpSampling2D needs.
    want = np.asarray(model(lr, training=False), np.float32)
    got = np.asarray(new(lr, training=False), np.float32)
    diff = float(np.abs(want - got).max())
    if not diff <= MAX_ABS_DIFF:
        raise LegacyModelError(
            f"{model.name}: the rebuilt generator differs by up to {diff:.4g} grey levels "
            f"(allowed {MAX_ABS_DIFF}); not converting it"
        )
    return new
