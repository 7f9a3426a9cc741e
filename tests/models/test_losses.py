"""Loss functions on tiny tensors with hand-computed values."""

from __future__ import annotations

import itertools
from pathlib import Path

import keras
import numpy as np
import pytest

from models.losses import (
    build_feature_extractor,
    discriminator_loss,
    generator_adversarial_loss,
    perceptual_loss,
    pixel_loss,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)


def _img(value: float | np.ndarray, batch: int = 2) -> np.ndarray:
    """A (batch, 4, 4, 3) float32 image in [0, 255]."""
    return np.broadcast_to(np.asarray(value, "float32"), (batch, 4, 4, 3)).copy()


def _log_sigmoid(x: float) -> float:
    return -np.log1p(np.exp(-x))


@pytest.mark.parametrize("value", [0.0, 37.5, 255.0])
def test_pixel_loss_of_identical_images_is_zero(value: float) -> None:
    assert float(pixel_loss(_img(value), _img(value))) == 0.0


@pytest.mark.parametrize(
    ("hr", "sr", "expected"),
    [(100.0, 151.0, 0.2), (151.0, 100.0, 0.2), (0.0, 255.0, 1.0), (10.0, 35.5, 0.1)],
)
def test_pixel_loss_known_constant_difference(hr: float, sr: float, expected: float) -> None:
    assert float(pixel_loss(_img(hr), _img(sr))) == pytest.approx(expected, abs=1e-6)


def test_pixel_loss_is_mean_over_pixels() -> None:
    sr = _img(0.0)
    sr[0, 0, 0, 0] = 255.0  # one of 2*4*4*3 = 96 values off by the full range
    assert float(pixel_loss(_img(0.0), sr)) == pytest.approx(1 / 96, rel=1e-5)


@pytest.mark.parametrize(("real", "fake"), [(2.0, -1.0), (0.0, 0.0), (-0.5, 3.0)])
def test_standard_gan_losses_match_log_sigmoid(real: float, fake: float) -> None:
    real_logits = np.full((2, 4, 4, 1), real, "float32")
    fake_logits = np.full((2, 4, 4, 1), fake, "float32")
    d_expected = -_log_sigmoid(real) - _log_sigmoid(-fake)
    g_expected = -_log_sigmoid(fake)
    d = float(discriminator_loss(real_logits, fake_logits, "standard"))
    g = float(generator_adversarial_loss(real_logits, fake_logits, "standard"))
    assert d == pytest.approx(d_expected, rel=1e-5)
    assert g == pytest.approx(g_expected, rel=1e-5)
    assert float(generator_adversarial_loss(None, fake_logits, "standard")) == pytest.approx(g)


def test_ragan_losses_match_hand_computed_values() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2, 4, 4, 1)).astype("float32")
    fake = rng.normal(size=(2, 4, 4, 1)).astype("float32")
    real_rel = real.astype("float64") - fake.mean()
    fake_rel = fake.astype("float64") - real.mean()
    d_expected = 0.5 * (-_log_sigmoid(real_rel).mean() - _log_sigmoid(-fake_rel).mean())
    g_expected = 0.5 * (-_log_sigmoid(-real_rel).mean() - _log_sigmoid(fake_rel).mean())
    assert float(discriminator_loss(real, fake, "ragan")) == pytest.approx(d_expected, rel=1e-5)
    assert float(generator_adversarial_loss(real, fake, "ragan")) == pytest.approx(
        g_expected, rel=1e-5
    )


@pytest.mark.parametrize("gan_type", ["standard", "ragan"])
def test_d_loss_falls_as_d_separates_real_from_fake(gan_type: str) -> None:
    losses = []
    g_losses = []
    for gap in [0.0, 1.0, 2.0, 4.0]:
        real = np.full((2, 4, 4, 1), gap, "float32")
        fake = np.full((2, 4, 4, 1), -gap, "float32")
        losses.append(float(discriminator_loss(real, fake, gan_type)))
        g_losses.append(float(generator_adversarial_loss(real, fake, gan_type)))
    assert all(a > b for a, b in itertools.pairwise(losses))
    # ...and the generator's loss rises when D wins.
    assert all(a < b for a, b in itertools.pairwise(g_losses))


def test_unknown_gan_type_raises() -> None:
    logits = np.zeros((1, 2, 2, 1), "float32")
    with pytest.raises(ValueError, match="wgan"):
        discriminator_loss(logits, logits, "wgan")
    with pytest.raises(ValueError, match="wgan"):
        generator_adversarial_loss(logits, logits, "wgan")


def test_feature_extractor_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vgg19_notop.h5"
    with pytest.raises(FileNotFoundError, match=r"nowhere/vgg19_notop\.h5"):
        build_feature_extractor(missing)
    with pytest.raises(FileNotFoundError):
        build_feature_extractor(None)


def test_feature_extractor_loads_local_weights(tmp_path: Path) -> None:
    # Random weights saved locally stand in for the ImageNet file: nothing is downloaded.
    path = tmp_path / "vgg19_notop.weights.h5"
    keras.applications.VGG19(include_top=False, weights=None).save_weights(path)
    extractor = build_feature_extractor(path)
    assert extractor.layers[-1].name == "block5_conv4"
    assert extractor.trainable_weights == []
    hr = np.random.default_rng(0).uniform(0, 255, size=(1, 32, 32, 3)).astype("float32")
    assert extractor(hr).shape == (1, 2, 2, 512)
    assert float(perceptual_loss(extractor, hr, hr)) == 0.0


def test_perceptual_loss_with_a_stand_in_extractor() -> None:
    # Any feature model works; a full VGG19 would be 80 MB of weights for this check.
    inp = keras.Input((None, None, 3))
    extractor = keras.Model(inp, keras.layers.Conv2D(5, 3, padding="same")(inp))
    hr = np.random.default_rng(0).uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    assert float(perceptual_loss(extractor, hr, hr)) == 0.0
    assert float(perceptual_loss(extractor, hr, np.clip(hr + 40.0, 0, 255))) > 0.0
