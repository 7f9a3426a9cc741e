"""Generator and discriminator builders: shapes, the bicubic-at-init contract, serialisation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from models.layers import PixelShuffle
from models.networks import (
    GENERATORS,
    build_discriminator,
    build_fast,
    build_generator,
    build_quality,
)
from videoboost.config import DiscriminatorConfig, GeneratorConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)


def _tiny(tier: str, scale: int) -> GeneratorConfig:
    return GeneratorConfig(tier=tier, scale=scale, filters=4, blocks=1)


def _frames(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random RGB frames, float32 in [0, 255]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(batch, height, width, 3)).astype("float32")


def _model_input(tier: str, lr: np.ndarray, seed: int = 5) -> np.ndarray:
    """``lr`` as the tier takes it: the video tier gets a 3-frame window, centre first (the
    neighbours random, so a skip read from the wrong channels would show)."""
    if tier != "video":
        return lr
    rng = np.random.default_rng(seed)
    return np.concatenate([lr, rng.uniform(0, 255, lr.shape), rng.uniform(0, 255, lr.shape)], -1)


@pytest.mark.parametrize("scale", [2, 3, 4, 5])
@pytest.mark.parametrize("tier", sorted(GENERATORS))
def test_generator_is_bicubic_at_init(tier: str, scale: int) -> None:
    gen = build_generator(_tiny(tier, scale))
    lr = _frames(2, 12, 20)  # non-square, to catch swapped H/W
    sr = np.asarray(gen(_model_input(tier, lr).astype("float32")))
    name = "video1" if tier == "video" else tier
    assert gen.name == f"videoboost_{name}_x{scale}"
    assert sr.shape == (2, 12 * scale, 20 * scale, 3)
    assert sr.dtype == np.float32
    assert np.isfinite(sr).all()
    # The zero-initialised last conv makes the residual 0: the net starts as its bicubic skip.
    bicubic = np.asarray(keras.layers.UpSampling2D(scale, interpolation="bicubic")(lr))
    np.testing.assert_allclose(sr, bicubic, atol=1e-3)


def test_parameter_counts_match_reference_sizes() -> None:
    assert build_fast(GeneratorConfig(tier="fast", scale=4)).count_params() == 42_640
    quality = GeneratorConfig(tier="quality", filters=32, blocks=8, scale=4)
    assert build_quality(quality).count_params() == 172_240
    # Early fusion of a 3-frame window only widens the first conv: 6 more channels x 9 x 32.
    video = build_generator(GeneratorConfig(tier="video", scale=4))
    assert video.count_params() == 42_640 + 6 * 9 * 32
    assert video.inputs[0].shape[-1] == 9
    assert build_generator(GeneratorConfig(tier="video", window=2)).inputs[0].shape[-1] == 15


def test_window_belongs_to_the_video_tier() -> None:
    with pytest.raises(ValueError, match="window applies to 'video'"):
        GeneratorConfig(tier="fast", window=1)
    with pytest.raises(ValueError, match="window >= 1"):
        GeneratorConfig(tier="video", window=0)
    assert GeneratorConfig(tier="video").window == 1


def test_unknown_tier_raises_listing_valid_tiers() -> None:
    cfg = GeneratorConfig.model_construct(tier="bogus", scale=2, filters=4, blocks=1)
    with pytest.raises(ValueError, match=r"bogus.*fast, quality"):
        build_generator(cfg)


def test_pixel_shuffle_config_round_trip() -> None:
    layer = PixelShuffle(3, name="ps")
    clone = PixelShuffle.from_config(layer.get_config())
    assert clone.scale == 3 and clone.name == "ps"
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, PixelShuffle) and restored.scale == 3
    assert keras.saving.get_registered_name(PixelShuffle) == "videoboost>PixelShuffle"
    x = _frames(1, 4, 5)[..., :1].repeat(9, axis=-1)
    assert np.asarray(clone(x)).shape == (1, 12, 15, 1)
    assert clone.compute_output_shape((None, None, 5, 18)) == (None, None, 15, 2)


def test_saved_generators_load_in_fresh_process(tmp_path: Path) -> None:
    lr = _frames(1, 9, 7)
    expected = {}
    for tier in sorted(GENERATORS):
        gen = build_generator(_tiny(tier, 3))
        # Move the zero-initialised head so the comparison covers every layer, not just bicubic.
        rng = np.random.default_rng(1)
        for w in gen.weights:
            w.assign(rng.normal(0, 0.1, size=w.shape).astype("float32"))
        gen.save(tmp_path / f"{tier}.keras")
        np.save(tmp_path / f"{tier}_lr.npy", _model_input(tier, lr).astype("float32"))
        expected[tier] = np.asarray(gen(np.load(tmp_path / f"{tier}_lr.npy")))
    # One fresh interpreter for all tiers: importing TensorFlow costs ~10 s here.
    script = textwrap.dedent(
        f"""
        import pathlib, numpy as np, keras
        import models.networks  # registers PixelShuffle; nothing else of ours is imported
        d = pathlib.Path({str(tmp_path)!r})
        for tier in {sorted(GENERATORS)!r}:
            lr = np.load(d / f"{{tier}}_lr.npy")
            model = keras.saving.load_model(d / f"{{tier}}.keras")
            np.save(d / f"{{tier}}_sr.npy", np.asarray(model(lr)))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for tier, sr in expected.items():
        np.testing.assert_allclose(np.load(tmp_path / f"{tier}_sr.npy"), sr, atol=1e-5)


def test_discriminator_outputs_patch_map_for_any_size() -> None:
    disc = build_discriminator(DiscriminatorConfig(filters=4, blocks=2))
    for height, width in [(32, 32), (48, 40)]:
        logits = np.asarray(disc(_frames(2, height, width)))
        assert logits.shape == (2, height // 4, width // 4, 1)
        assert np.isfinite(logits).all()


@pytest.mark.parametrize("tier", ["fast", "quality"])
def test_damage_code_starts_as_the_plain_generator_and_reads_the_pixels(
    tier: str, tmp_path: Path
) -> None:
    plain = build_generator(GeneratorConfig(tier=tier, filters=8, blocks=2))
    cond = build_generator(GeneratorConfig(tier=tier, filters=8, blocks=2, damage_code=4))
    assert cond.count_params() > plain.count_params()
    # Every plain layer is in the conditioned net under its name, so its weights load by name.
    for layer in plain.layers:
        cond.get_layer(layer.name).set_weights(layer.get_weights())
    head = plain.get_layer("to_subpixels")
    rng = np.random.default_rng(1)
    moved = [rng.normal(0, 0.05, w.shape).astype("float32") for w in head.get_weights()]
    head.set_weights(moved)
    cond.get_layer("to_subpixels").set_weights(moved)
    lr = _frames(2, 10, 14)
    # The scales start at exactly 1: the conditioned net computes what the plain one does.
    np.testing.assert_allclose(np.asarray(cond(lr)), np.asarray(plain(lr)), atol=1e-3)

    # Once the scales move, the output depends on the whole input through the pooled code:
    # a change far from a pixel changes it, which no 3x3 stack this shallow could do.
    for layer in cond.layers:
        if layer.name.endswith("_scale"):
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0, 0.5, kernel.shape).astype("float32"), bias])
    far = lr.copy()
    far[:, :, 10:] = 0.0
    a, b = np.asarray(cond(lr)), np.asarray(cond(far))
    assert np.abs(a[:, :4, :4] - b[:, :4, :4]).max() > 1e-3
    path = tmp_path / "cond.keras"
    cond.save(path)
    np.testing.assert_allclose(np.asarray(keras.models.load_model(path, compile=False)(lr)), a,
                               atol=1e-4)  # fmt: skip


def test_damage_code_belongs_to_the_single_frame_tiers() -> None:
    with pytest.raises(ValueError, match="single-frame tiers"):
        GeneratorConfig(tier="video", damage_code=4)
