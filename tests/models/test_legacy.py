"""Generators saved before issue 12 (bicubic ``UpSampling2D`` skip) still load from files and from
the registry, come back in the current architecture with the same outputs, and then serve any
frame size from one traced graph."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from models.layers import BicubicSubpixels, PixelShuffle  # noqa: E402
from models.legacy import LegacyModelError, is_legacy, modernize  # noqa: E402
from videoboost.config import GeneratorConfig  # noqa: E402


def old_style_generator(cfg: GeneratorConfig, seed: int = 0) -> keras.Model:
    """The generators as built before issue 12 (models/networks.py at d690652): pixel shuffle,
    then Keras' bicubic ``UpSampling2D`` skip. Every weight random, so each copied one counts."""
    keras.utils.set_random_seed(seed)

    def conv(filters, kernel, name):
        return keras.layers.Conv2D(filters, kernel, padding="same", name=name)

    def prelu(name):
        return keras.layers.PReLU(shared_axes=[1, 2], name=name)

    lr = keras.Input(shape=(None, None, 3), dtype="float32", name="lr")
    x0 = keras.layers.Rescaling(1.0 / 255.0, name="to_unit")(lr)
    if cfg.tier == "fast":
        x = prelu("prelu1")(conv(cfg.filters, 5, "conv1")(x0))
        x = prelu("prelu2")(conv(max(cfg.filters // 2, 1), 3, "conv2")(x))
    else:
        head = conv(cfg.filters, 3, "head")(x0)
        x = head
        for i in range(cfg.blocks):
            y = prelu(f"block{i}_prelu")(conv(cfg.filters, 3, f"block{i}_conv1")(x))
            x = keras.layers.Add(name=f"block{i}_add")(
                [x, conv(cfg.filters, 3, f"block{i}_conv2")(y)]
            )
        x = keras.layers.Add(name="long_skip")([head, conv(cfg.filters, 3, "trunk_out")(x)])
    s = cfg.scale
    x = PixelShuffle(s, name="pixel_shuffle")(conv(3 * s * s, 3, "to_subpixels")(x))
    skip = keras.layers.UpSampling2D(s, interpolation="bicubic", name="bicubic_skip")(x0)
    sr = keras.layers.Rescaling(255.0, name="to_255")(
        keras.layers.Add(name="add_bicubic")([x, skip])
    )
    model = keras.Model(lr, sr, name=f"videoboost_{cfg.tier}_x{s}")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in model.get_weights()])
    return model


CONFIGS = [
    GeneratorConfig(tier="fast", filters=8, scale=4),
    GeneratorConfig(tier="fast", filters=6, scale=3),
    GeneratorConfig(tier="quality", filters=8, blocks=2, scale=2),
]


def _lr(h: int, w: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (2, h, w, 3)).astype(np.float32)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.tier}-x{c.scale}")
def test_old_generator_is_rebuilt_with_near_identical_outputs(cfg):
    old = old_style_generator(cfg)
    new = modernize(old)
    assert is_legacy(old) and not is_legacy(new)
    assert any(isinstance(layer, BicubicSubpixels) for layer in new.layers)
    assert new.count_params() == old.count_params()
    for h, w in ((17, 29), (40, 24)):  # not the size modernize checked on
        lr = _lr(h, w)
        want = np.asarray(old(lr, training=False))
        got = np.asarray(new(lr, training=False))
        assert got.shape == (2, h * cfg.scale, w * cfg.scale, 3)
        assert np.abs(got - want).max() < 0.01  # grey levels: float rounding only
        assert np.abs(want).mean() > 1  # the random weights produce a real picture


def test_a_current_generator_is_returned_as_is():
    from models.networks import build_generator

    gen = build_generator(GeneratorConfig(tier="fast", filters=4))
    assert modernize(gen) is gen


def test_a_foreign_bicubic_model_is_refused():
    model = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.UpSampling2D(2, interpolation="bicubic")]
    )
    with pytest.raises(LegacyModelError, match="not a VideoBoost generator"):
        modernize(model)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_old_files_load_converted_and_trace_once_for_any_size(tmp_path, suffix):
    from videoboost.config import EngineConfig
    from videoboost.inference.engine import Upscaler, keras_predict
    from videoboost.mlops.tracking import load_generator

    cfg = CONFIGS[0]
    old = old_style_generator(cfg)
    path = tmp_path / f"old{suffix}"
    old.save(path)
    gen, info = load_generator(str(path))
    assert info["scale"] == 4 and not is_legacy(gen)

    predict = keras_predict(gen)
    sizes = [(18, 32), (25, 13), (9, 40), (31, 31)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = [predict(_lr(h, w, seed=h)) for h, w in sizes]
    assert predict.run.experimental_get_tracing_count() == 1
    assert not [w for w in caught if "retracing" in str(w.message)]
    for (h, w), out in zip(sizes, outs, strict=True):
        np.testing.assert_allclose(out, np.asarray(old(_lr(h, w, seed=h))), atol=0.01)
    # Tiles of another size through the engine reuse the same graph too.
    Upscaler(predict, 4, EngineConfig(tile=16, overlap=4)).upscale_image(
        _lr(40, 50)[0].astype(np.uint8)
    )
    assert predict.run.experimental_get_tracing_count() == 1


def test_old_registered_version_loads_converted(tmp_path):
    import mlflow

    from videoboost.mlops.tracking import MODEL_NAME, load_generator, setup

    cfg = CONFIGS[2]
    old = old_style_generator(cfg, seed=3)
    setup()
    with mlflow.start_run():
        logged = mlflow.keras.log_model(old, name="generator", pip_requirements=["keras"])
    mlflow.register_model(logged.model_uri, MODEL_NAME)
    gen, info = load_generator(f"models:/{MODEL_NAME}/1")
    assert info["version"] == "1" and info["scale"] == 2 and not is_legacy(gen)
    lr = _lr(21, 34)
    np.testing.assert_allclose(gen(lr), old(lr), atol=0.01)


def test_export_of_an_old_model_reloads_as_savedmodel(tmp_path):
    import tensorflow as tf

    from videoboost.inference.export import export_model

    old = old_style_generator(CONFIGS[1])
    path = export_model(old, "savedmodel", tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))
    for h, w in ((12, 20), (7, 33)):  # the SavedModel takes any frame size
        lr = _lr(h, w)
        np.testing.assert_allclose(loaded.serve(tf.constant(lr)).numpy(), old(lr), atol=0.01)
