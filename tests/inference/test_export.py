"""`videoboost export`: each format reloads (in this process, with the formats' own loaders) and
gives the same output as the model it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny import tiny_generator

from videoboost.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    gen = tiny_generator(scale=4, seed=1)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    gen.save(path)
    lr = np.random.default_rng(0).uniform(0, 255, (2, 12, 20, 3)).astype(np.float32)
    return path, lr, np.asarray(gen(lr, training=False))


def _reload(fmt: str, path: Path):
    import keras

    if fmt == "openvino":
        from videoboost.inference.runtimes import openvino_predict

        return openvino_predict(path)  # its own runtime, no TensorFlow involved

    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # keep it: it owns the variables
        return lambda x: loaded.serve(tf.constant(x)).numpy()  # the signature TF Serving calls
    import models.layers  # noqa: F401  PixelShuffle must be registered to load

    reloaded = keras.models.load_model(path, compile=False)
    return lambda x: np.asarray(reloaded(x, training=False))


@pytest.mark.parametrize(
    "fmt, name",
    [("keras", "g.keras"), ("h5", "g.h5"), ("savedmodel", "g_sm"), ("openvino", "g_ov")],
)
def test_export_reloads_with_identical_outputs(tmp_path, model, capsys, fmt, name):
    src, lr, expected = model
    out = tmp_path / name
    assert main(["export", str(src), "--format", fmt, "-o", str(out)]) == 0
    assert f"as {fmt}: {out}" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    got = _reload(fmt, out)(lr)
    assert got.shape == (2, 48, 80, 3)
    if fmt == "openvino":  # another runtime's kernels: float rounding, far below a grey level
        assert (out / "generator.xml").is_file() and (out / "generator.bin").is_file()
        assert np.abs(got - expected).max() < 0.01
    else:
        np.testing.assert_array_equal(got, expected)  # same weights, same ops: bit for bit


def test_export_adds_the_suffix_and_refuses_to_overwrite(tmp_path, model, capsys):
    src = model[0]
    assert main(["export", str(src), "-o", str(tmp_path / "g")]) == 0  # keras by default
    assert (tmp_path / "g.keras").is_file()
    assert main(["export", str(src), "-o", str(tmp_path / "g.keras")]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["export", str(src), "-o", str(tmp_path / "g.keras"), "--force"]) == 0
    assert main(["export", str(src), "--format", "h5", "-o", str(tmp_path / "g.keras")]) == 1
    assert "writes a .h5 file" in capsys.readouterr().err
