"""The generator in MLflow: logged with its signature, registered as a version, loaded back from
a registry URI, a run or a local file, and the generator a run warm-starts from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from videoboost import state
from videoboost.errors import ModelNotFound, VideoBoostError
from videoboost.inference.engine import infer_scale
from videoboost.mlops.store import (
    CHAMPION,
    MODEL_NAME,
    PIP_REQUIREMENTS,
    _mlflow,
    setup,
    with_store_retries,
)


def _fix_keras_input_example() -> None:
    """MLflow 3.17's Keras flavor saves the input example before creating the model folder.

    (mlflow/mlflow#16183, fixed upstream in an unreleased PR): make the folder first.
    """
    import mlflow.keras.save as keras_save

    original = keras_save._save_example
    if getattr(original, "_videoboost_fixed", False):
        return

    def save_example(mlflow_model, input_example, path, *args, **kwargs):
        os.makedirs(path, exist_ok=True)
        return original(mlflow_model, input_example, path, *args, **kwargs)

    save_example._videoboost_fixed = True
    keras_save._save_example = save_example


def signature(channels: int = 3):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    # H and W free: the generator is fully convolutional (infer_signature would pin them).
    # A video-tier generator takes an aligned window, 3 * (2k + 1) channels.
    spec_in = TensorSpec(np.dtype("float32"), (-1, -1, -1, channels))
    spec_out = TensorSpec(np.dtype("float32"), (-1, -1, -1, 3))
    return ModelSignature(inputs=Schema([spec_in]), outputs=Schema([spec_out]))


def log_generator(generator, meta: dict[str, Any], input_example: np.ndarray):
    """Log the generator alone (Keras 3 flavor) with signature, example and metadata."""
    import keras

    mlflow = _mlflow()
    _fix_keras_input_example()
    # MLflow checks the input example with a plain ``model.predict``, whose Keras progress bar
    # would land in the job's log as a line of escape codes.
    was_interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        return mlflow.keras.log_model(
            generator,
            name="generator",
            signature=signature(int(input_example.shape[-1])),
            input_example=input_example.astype(np.float32),
            pip_requirements=PIP_REQUIREMENTS,
            metadata={k: str(v) for k, v in meta.items()},
        )
    finally:
        if was_interactive:
            keras.config.enable_interactive_logging()


def register(model_uri: str, tags: dict[str, Any], description: str | None = None):
    """Register ``model_uri`` as a new version of ``videoboost-generator``.

    Args:
        tags: the version's few tags (see :data:`VERSION_TAGS`); everything else about it goes
            in ``description`` (Markdown, shown on its page in the UI) or the run's artifacts.
        description: the version's card (see :mod:`videoboost.mlops.version_card`).
    """
    mlflow = _mlflow()
    client = mlflow.MlflowClient()

    def _register():
        mv = mlflow.register_model(model_uri, MODEL_NAME)
        for k, v in tags.items():
            client.set_model_version_tag(MODEL_NAME, mv.version, k, str(v))
        if description:
            client.update_model_version(MODEL_NAME, mv.version, description=description)
        return mv

    return with_store_retries(_register, f"registering {MODEL_NAME}", attempts=1)


def load_generator(model: str | None = None):
    """Load a generator from a registry URI, a run/model URI or a local ``.keras``/model folder.

    Args:
        model: ``models:/videoboost-generator/3``, ``models:/videoboost-generator@champion``,
            a path, or None for the champion.

    Returns:
        ``(keras.Model, info)`` where info has ``uri``, ``scale``, ``version`` (or None).

    Raises:
        ModelNotFound: nothing at that URI/path, with what to do.
    """
    import models.networks  # noqa: F401  registers PixelShuffle before deserialising
    from models.legacy import modernize

    uri = model or f"models:/{MODEL_NAME}@{CHAMPION}"
    path = Path(uri)
    if not uri.startswith(("models:/", "runs:/")) and path.suffix in (".keras", ".h5"):
        import keras

        if not path.is_file():
            raise ModelNotFound(f"model file {path} does not exist")
        generator = modernize(keras.models.load_model(path, compile=False))
        return generator, {"uri": str(path), "scale": infer_scale(generator), "version": None}

    mlflow = _mlflow()
    setup()
    version = _resolve_version(uri)
    try:
        generator = mlflow.keras.load_model(uri)
    except Exception as exc:
        if model is None:
            raise ModelNotFound(
                f"no champion in the registry ({MODEL_NAME}@{CHAMPION} at {state.tracking_uri()}): "
                "train one with `videoboost train`, promote it with `videoboost promote`, or "
                "pass --model PATH_OR_URI"
            ) from exc
        raise ModelNotFound(
            f"cannot load model {uri}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    # Versions registered before issue 12 have the bicubic UpSampling2D skip: rebuilt (and
    # checked) here so every caller gets a model that traces once for any frame size.
    generator = modernize(generator)
    return generator, {"uri": uri, "scale": infer_scale(generator), "version": version}


def _resolve_version(uri: str) -> str | None:
    if not uri.startswith(f"models:/{MODEL_NAME}"):
        return None
    client = _mlflow().MlflowClient()
    rest = uri.removeprefix(f"models:/{MODEL_NAME}")
    try:
        if rest.startswith("@"):
            return str(client.get_model_version_by_alias(MODEL_NAME, rest[1:]).version)
        if rest.startswith("/"):
            return str(client.get_model_version(MODEL_NAME, rest[1:]).version)
    except Exception:
        return None
    return None


def load_init(init: str, scale: int):
    """The generator to warm-start from: ``"champion"`` or a model URI/path, at ``scale``.

    Returns ``(keras.Model, info)`` as :func:`load_generator`.

    Raises:
        ModelNotFound: nothing there (no champion yet: train without --init first).
        VideoBoostError: it upscales by another factor.
    """
    uri = f"models:/{MODEL_NAME}@{CHAMPION}" if init == CHAMPION else init
    try:
        generator, info = load_generator(uri)
    except ModelNotFound as exc:
        if init == CHAMPION:
            raise ModelNotFound(
                f"--init champion: there is no champion yet ({MODEL_NAME}@{CHAMPION} at "
                f"{state.tracking_uri()}); train once without --init and promote the result"
            ) from exc
        raise
    if info["scale"] != scale:
        raise VideoBoostError(
            f"--init {init} is a x{info['scale']} generator but this run trains x{scale}; "
            "warm start needs the same tier and scale"
        )
    return generator, info


def lineage_tags(parent_info: dict) -> dict[str, str]:
    """Tags naming the generator a run started from (empty for a cold start)."""
    if not parent_info:
        return {}
    from videoboost.mlops.bases import base_lineage

    tags = {"parent_model_uri": str(parent_info["uri"])}
    if parent_info.get("version"):
        tags["parent_version"] = str(parent_info["version"])
    tags.update(base_lineage(str(parent_info["uri"])))  # a shipped base: its card's name
    return tags
