"""Registry reads: aliases, the champion history, versions and their scale. Writes nothing."""

from __future__ import annotations

import json

from videoboost.errors import ModelNotFound
from videoboost.mlops.registry.client import HISTORY_TAG, _call, _client, _is_missing
from videoboost.mlops.tracking import MODEL_NAME, load_generator


def aliases() -> dict[str, str]:
    """``{alias: version}`` of the registered model (empty when it is not registered yet)."""
    client = _client()

    def read() -> dict[str, str]:
        try:
            model = client.get_registered_model(MODEL_NAME)
        except Exception as exc:
            if _is_missing(exc):
                return {}
            raise
        return {alias: str(version) for alias, version in model.aliases.items()}

    return _call(read, "reading the aliases")


def _model_tags() -> dict[str, str]:
    client = _client()
    return _call(lambda: dict(client.get_registered_model(MODEL_NAME).tags), "reading model tags")


def history() -> dict[str, list[str]]:
    """Previous champions per scale, ``{"4": ["1", "3"]}`` (newest last)."""
    raw = _model_tags().get(HISTORY_TAG)
    return json.loads(raw) if raw else {}


def _get_version(version: str):
    client = _client()

    def read():
        try:
            return client.get_model_version(MODEL_NAME, str(version))
        except Exception as exc:
            if _is_missing(exc):
                raise ModelNotFound(
                    f"{MODEL_NAME} has no version {version}; list them in the MLflow UI or train "
                    "one with `videoboost train`"
                ) from exc
            raise

    return _call(read, f"reading version {version}")


def newest_version() -> str:
    """The highest version number of the registered model."""
    client = _client()
    versions = _call(
        lambda: client.search_model_versions(f"name='{MODEL_NAME}'"), "listing the versions"
    )
    if not versions:
        raise ModelNotFound(
            f"no version of {MODEL_NAME} is registered yet; train one with `videoboost train`"
        )
    return str(max(int(v.version) for v in versions))


def _version_scale(version: str) -> int:
    """A version's scale: its ``scale`` tag, else measured on the loaded model."""
    tag = _get_version(version).tags.get("scale")
    if tag and tag.isdigit():
        return int(tag)
    return load_generator(f"models:/{MODEL_NAME}/{version}")[1]["scale"]
