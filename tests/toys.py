"""Tiny real generators and a ready MLflow store for the evaluation and promotion tests.

A fast generator's last convolution starts at zero, so a fresh one *is* bicubic upsampling, and
its output is bicubic plus ``PixelShuffle(conv(features))``: scaling that last convolution's
kernel and bias by ``alpha`` scales the learned residual. One short training run (a few seconds)
therefore gives a family of models of known order: alpha 1 (best), 0.5 (good), 0 (bicubic).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
from media import texture

from videoboost.config import DegradeConfig, GeneratorConfig
from videoboost.data.degrade import degrade

SCALE = 4
FILTERS = 8


@functools.cache
def _trained_weights(scale: int = SCALE) -> tuple[np.ndarray, ...]:
    import keras

    from models.networks import build_generator

    keras.utils.set_random_seed(0)
    hr = []
    for seed in range(4):
        img = texture(96, 256, seed=10 + seed)
        side = 12 * scale
        for y in range(0, 96 - side + 1, 16):
            for x in range(0, 256 - side + 1, 16):
                hr.append(img[y : y + side, x : x + side])
    hr_a = np.stack(hr)
    lr_a = np.stack([degrade(h, DegradeConfig(scale=scale)) for h in hr_a])
    gen = build_generator(GeneratorConfig(filters=FILTERS, scale=scale))
    gen.compile(keras.optimizers.Adam(3e-3), loss="mae")
    # About 120 steps of batch 16: +2 dB over bicubic on the tests' synthetic clips.
    gen.fit(lr_a.astype("float32"), hr_a.astype("float32"), batch_size=16, epochs=8, verbose=0)
    return tuple(np.array(w) for w in gen.get_weights())


def generator(alpha: float = 1.0, scale: int = SCALE):
    """A toy generator whose learned residual is scaled by ``alpha`` (0 = exactly bicubic)."""
    from models.networks import build_generator

    gen = build_generator(GeneratorConfig(filters=FILTERS, scale=scale))
    if alpha != 0.0:
        gen.set_weights(list(_trained_weights(scale)))
        layer = gen.get_layer("to_subpixels")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * alpha, bias * alpha])
    return gen


def video_generator(alpha: float = 1.0, scale: int = SCALE):
    """A toy video-tier generator (window of 3): the trained toy's weights, its first
    convolution spread evenly over the three aligned frames, so it averages the window (what
    lets a video model see through codec noise) and is otherwise the fast toy."""
    from models.networks import build_generator

    fast = generator(alpha, scale)
    gen = build_generator(GeneratorConfig(tier="video", filters=FILTERS, scale=scale))
    for layer in fast.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name == "conv0":
            kernel, bias = weights
            weights = [np.concatenate([kernel / 3] * 3, axis=2), bias]
        gen.get_layer(layer.name).set_weights(weights)
    return gen


@functools.cache
def _template_db() -> Path:
    """An empty, migrated MLflow SQLite database (migrations take seconds; copying does not)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = Path(tempfile.mkdtemp(prefix="vb-mlflow-template-"))
    atexit.register(shutil.rmtree, folder, True)
    SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts"))
    return folder / "mlflow.db"


def fresh_store(home: Path) -> None:
    """Give the test's state folder (``VIDEOBOOST_HOME``) its own copy of an empty store."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(_template_db(), home / "mlflow.db")


def register(gen, scale: int | None = None, dataset: dict | None = None) -> str:
    """Log ``gen`` in a run of its own and register it; returns the version (str).

    ``dataset``: a ``dataset.json`` payload to log as the run's ``dataset/dataset.json``
    (what :func:`videoboost.mlops.tracking.log_dataset` does for real training runs).
    """
    import mlflow

    from videoboost.mlops import tracking

    scale = scale or tracking.infer_scale(gen)
    experiment_id = tracking.setup()
    with mlflow.start_run(experiment_id=experiment_id):
        if dataset is not None:
            mlflow.log_dict(dataset, "dataset/dataset.json")
        channels = int(gen.inputs[0].shape[-1])  # 9 for a video-tier window of 3
        info = tracking.log_generator(
            gen, {"scale": scale}, np.zeros((1, 8, 8, channels), np.float32)
        )
        mv = tracking.register(info.model_uri, {"scale": scale})
    return str(mv.version)
