"""Standalone copies of a generator: ``.keras``, ``.h5`` and a TF SavedModel."""

from __future__ import annotations

import os
from pathlib import Path

from videoboost.batch import OutputConflict
from videoboost.errors import VideoBoostError

EXPORT_SUFFIXES = {"keras": ".keras", "h5": ".h5", "savedmodel": ""}


def export_model(generator, fmt: str, path: str | Path, *, force: bool = False) -> Path:
    """Save ``generator`` standalone: ``keras`` (native), ``h5`` (legacy HDF5, the original
    VideoBoost's format) or ``savedmodel`` (a TF SavedModel folder for TF Serving, signature
    ``serve``). Written to a temp name beside ``path`` and renamed when complete.

    The ``.keras`` and ``.h5`` files need ``models.layers`` imported to load (the
    ``PixelShuffle`` layer); the SavedModel needs nothing but TensorFlow.
    """
    import secrets
    import shutil

    if fmt not in EXPORT_SUFFIXES:
        raise VideoBoostError(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_SUFFIXES)}")
    path = Path(path)
    want = EXPORT_SUFFIXES[fmt]
    if want and path.suffix.lower() != want:
        if path.suffix:
            raise VideoBoostError(
                f"--format {fmt} writes a {want} file; name it {path.with_suffix(want)}"
            )
        path = path.with_suffix(want)
    if path.exists() and not force:
        raise OutputConflict(f"{path} exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{want}")
    try:
        if fmt == "savedmodel":
            _open_shape_clone(generator).export(str(tmp), format="tf_saved_model", verbose=False)
        else:
            generator.save(str(tmp))
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return path


def _open_shape_clone(generator):
    """``generator`` with its interpolating ``UpSampling2D`` layers swapped for a plain
    ``tf.image.resize`` on the runtime shape (same op, same numbers, shared weights).

    Keras 3.15's ``UpSampling2D(interpolation="bicubic")`` cannot be traced with open height
    and width (it tests a symbolic size as a Python bool), and a SavedModel for TF Serving
    must accept any frame size.
    """
    import keras
    import tensorflow as tf

    class OpenShapeResize(keras.layers.Layer):
        def __init__(self, factor: tuple[int, int], method: str, **kwargs):
            super().__init__(**kwargs)
            self.factor, self.method = factor, method

        def call(self, x):
            size = tf.shape(x)[1:3] * tf.constant(self.factor, tf.int32)
            return tf.cast(tf.image.resize(x, size, method=self.method), x.dtype)

    def clone(layer):
        if isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation != "nearest":
            if layer.data_format != "channels_last":
                raise VideoBoostError(f"{layer.name}: only channels_last models can be exported")
            return OpenShapeResize(tuple(layer.size), layer.interpolation, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(generator, clone_function=clone)
    copy.set_weights(generator.get_weights())
    return copy
