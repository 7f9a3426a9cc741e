"""SRGAN train/test steps: which weights each mode moves, the log contract, a short fit."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from models.gan import LOG_KEYS, SRGAN
from models.networks import build_discriminator, build_generator
from videoboost.config import DiscriminatorConfig, GeneratorConfig

SCALE = 2


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)


def _model() -> SRGAN:
    gen = build_generator(GeneratorConfig(tier="fast", scale=SCALE, filters=4, blocks=1))
    disc = build_discriminator(DiscriminatorConfig(filters=4, blocks=1))
    return SRGAN(gen, disc)


def _textures(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random textures: a few sinusoids per channel, (n, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32") / size
    out = np.empty((n, size, size, 3), "float32")
    for i in range(n):
        for c in range(3):
            img = np.zeros((size, size), "float32")
            for _ in range(3):
                fy, fx = rng.uniform(0.5, 4.0, size=2)
                img += np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 2 * np.pi))
            out[i, ..., c] = 127.5 + 40.0 * img
    return np.clip(out, 0, 255).round().astype("uint8")


def _pairs(n: int, hr_size: int = 16 * SCALE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(lr, hr) float32 in [0, 255]; LR is the area-downscaled HR."""
    hr = _textures(n, hr_size, seed)
    lr_size = hr_size // SCALE
    lr = np.stack([cv2.resize(im, (lr_size, lr_size), interpolation=cv2.INTER_AREA) for im in hr])
    return lr.astype("float32"), hr.astype("float32")


def _snapshot(net: keras.Model) -> list[np.ndarray]:
    return [np.array(w) for w in net.trainable_weights]


def _changed(before: list[np.ndarray], net: keras.Model) -> bool:
    return any(
        not np.array_equal(b, np.array(w))
        for b, w in zip(before, net.trainable_weights, strict=True)
    )


def _compile(model: SRGAN, mode: str, **kwargs) -> None:
    model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), mode=mode, **kwargs)


@pytest.mark.parametrize(
    ("mode", "gan_type", "g_moves", "d_moves"),
    [
        ("pixel", "ragan", True, False),
        ("discriminator", "ragan", False, True),
        ("adversarial", "ragan", True, True),
        ("adversarial", "standard", True, True),
    ],
)
def test_train_step_moves_the_right_network(
    mode: str, gan_type: str, g_moves: bool, d_moves: bool
) -> None:
    model = _model()
    _compile(model, mode, gan_type=gan_type)
    lr, hr = _pairs(2)
    g_before, d_before = _snapshot(model.generator), _snapshot(model.discriminator)
    logs = model.train_step((tf.constant(lr), tf.constant(hr)))
    assert set(logs) == set(LOG_KEYS)
    values = {k: float(v) for k, v in logs.items()}
    assert all(np.isfinite(v) for v in values.values()), values
    assert _changed(g_before, model.generator) is g_moves
    assert _changed(d_before, model.discriminator) is d_moves
    assert values["pixel_loss"] > 0
    assert (values["g_loss"] > 0) is g_moves
    assert (values["d_loss"] > 0) is d_moves
    assert (values["adv_loss"] > 0) is (mode == "adversarial")


def test_adversarial_step_with_perceptual_term() -> None:
    model = _model()
    inp = keras.Input((None, None, 3))
    extractor = keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same")(inp))
    extractor.trainable = False
    _compile(model, "adversarial", perceptual_weight=1.0, feature_extractor=extractor)
    lr, hr = _pairs(2)
    logs = model.train_step((tf.constant(lr), tf.constant(hr)))
    g_loss, pix, adv = (float(logs[k]) for k in ("g_loss", "pixel_loss", "adv_loss"))
    # The perceptual term is only visible inside g_loss.
    assert g_loss > pix + 5e-3 * adv
    # The frozen extractor stays out of the GAN's weights (and so out of its checkpoints).
    assert len(model.weights) == len(model.generator.weights) + len(model.discriminator.weights)


def test_compile_rejects_bad_settings() -> None:
    model = _model()
    with pytest.raises(ValueError, match="mode"):
        _compile(model, "bogus")
    with pytest.raises(ValueError, match="gan_type"):
        _compile(model, "adversarial", gan_type="wgan")
    with pytest.raises(ValueError, match="feature_extractor"):
        _compile(model, "adversarial", perceptual_weight=1.0)
    with pytest.raises(ValueError, match="d_optimizer"):
        model.compile(keras.optimizers.Adam(), None, mode="adversarial")


def test_fit_reduces_pixel_loss_and_modes_switch_by_recompiling() -> None:
    lr, hr = _pairs(16)
    ds = tf.data.Dataset.from_tensor_slices((lr, hr)).batch(4)
    model = _model()
    _compile(model, "pixel")
    before = model.evaluate(ds, verbose=0, return_dict=True)
    assert set(before) == {"g_loss", "pixel_loss"}
    hist = model.fit(
        ds.repeat(), steps_per_epoch=30, epochs=1, validation_data=ds, shuffle=False, verbose=0
    )
    assert {*LOG_KEYS, "val_pixel_loss", "val_g_loss"} <= set(hist.history)
    after = model.evaluate(ds, verbose=0, return_dict=True)
    assert after["pixel_loss"] < 0.97 * before["pixel_loss"], (before, after)
    assert after["g_loss"] == pytest.approx(after["pixel_loss"])

    # Each phase is a new compile; the traced step of the previous mode must not be reused.
    g_before, d_before = _snapshot(model.generator), _snapshot(model.discriminator)
    model.compile(None, keras.optimizers.Adam(1e-4), mode="discriminator")
    hist = model.fit(ds, epochs=1, shuffle=False, verbose=0)
    assert not _changed(g_before, model.generator)
    assert _changed(d_before, model.discriminator)
    assert hist.history["g_loss"][0] == 0 and hist.history["d_loss"][0] > 0

    g_before, d_before = _snapshot(model.generator), _snapshot(model.discriminator)
    d_optimizer = keras.optimizers.Adam(1e-4)
    model.compile(keras.optimizers.Adam(1e-4), d_optimizer, mode="adversarial")
    hist = model.fit(ds, epochs=1, shuffle=False, verbose=0)
    assert _changed(g_before, model.generator) and _changed(d_before, model.discriminator)
    assert hist.history["adv_loss"][0] > 0 and hist.history["d_loss"][0] > 0
    assert int(d_optimizer.iterations) == 4
