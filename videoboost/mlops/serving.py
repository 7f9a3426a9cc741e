"""BentoML at the edge: the generator into the BentoML model store, and the bento build.

The only module (with ``service/``) that imports BentoML. The served model travels as a BentoML
model named like the registered MLflow model (``videoboost-generator``), holding
``generator.keras`` plus where it came from::

    labels    mlflow_model, mlflow_version, mlflow_run_id, scale, source, and the registry
              version's metric tags (e.g. bench_psnr) -- copied onto the bento by build_bento
    metadata  the same, plus every tag of the MLflow model version, and bench_psnr_gain (the
              benchmark gain over bicubic, dB) with bench_psnr_gain_source when it is known;
              runtime_fidelity (each runtime's PSNR on the benchmark against tf-f32);
              bench_track_gains (the gain on each benchmark track) and mlflow_version_url
              (the version's page, when the store is a tracking server), for the service's page
    int8/     the NNCF int8 OpenVINO IR, made at import; runtimes that lose more than 0.1 dB
              on the benchmark are in the label runtime_refused, and the service never picks them

``bentoml build`` then references that model by tag (models are not copied into the bento
until export or containerize), and :func:`build_bento` pins the tag as the bento argument
``model``, so a built bento serves exactly the version it was built from.

``BENTOML_HOME`` is read when BentoML is first imported: every entry point here calls
:func:`videoboost.state.configure_environment` first.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from videoboost import state
from videoboost.errors import ModelNotFound, VideoBoostError

BENTO_MODEL = "videoboost-generator"  # same name as the MLflow registered model
BENTO_NAME = "videoboost"
MODEL_FILE = "generator.keras"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENTOFILE = PROJECT_ROOT / "bentofile.yaml"
# MLflow version tags copied onto the bento's labels (metrics written at registration and
# promotion); anything else stays in the model's metadata only.
_METRIC_TAG_PREFIXES = ("bench_", "val_", "final_")


class BuildFailed(VideoBoostError):
    """``bentoml build`` did not produce a bento."""


def _bentoml():
    if "bentoml" not in sys.modules:  # inside `bentoml serve` its home is already fixed
        state.configure_environment()
    import bentoml

    return bentoml


def bentoml_home() -> str:
    """The model/bento store BentoML actually uses (fixed when it was imported)."""
    _bentoml()
    from bentoml._internal.configuration.containers import BentoMLContainer

    return str(BentoMLContainer.bentoml_home.get())


def _no_model_message(tag: str) -> str:
    return (
        f"no BentoML model {tag} in the model store at {bentoml_home()}: import "
        "the registry champion with `videoboost bento import` (or build the whole bento with "
        "`videoboost bento build`); to serve another model pass `--model URI_OR_PATH` there. "
        "No champion yet? Train one with `videoboost train` and promote it."
    )


def _source_key(info: dict[str, Any]) -> str:
    """What identifies the imported model: the registry version, or the file's content."""
    uri = str(info["uri"])
    if info.get("version") is not None:
        return f"models:/{info.get('name', BENTO_MODEL)}/{info['version']}"
    path = Path(uri)
    if path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return f"file:sha256:{digest}"
    return uri


def _registry_details(version: str | None) -> dict[str, str]:
    """The MLflow model version's run id and tags ({} for files and unregistered runs)."""
    if version is None:
        return {}
    from videoboost.mlops import tracking

    client = tracking._mlflow().MlflowClient()
    mv = tracking.with_store_retries(
        lambda: client.get_model_version(tracking.MODEL_NAME, version),
        f"reading {tracking.MODEL_NAME} version {version}",
    )
    return {"run_id": mv.run_id or "", **{k: str(v) for k, v in (mv.tags or {}).items()}}


def benchmark_gain(
    tags: dict[str, str], run_metrics: Callable[[], dict[str, float]] = dict
) -> tuple[float | None, str]:
    """The model's benchmark gain over bicubic (dB PSNR) and where it was found.

    Promotion writes ``bench_psnr_gain`` as a tag of the registry version and as a metric of
    its training run; the tag wins, and the run is read only without it. Returns
    ``(None, "")`` for a model never benchmarked (or a value that is not a number), which the
    service then says instead of a figure.

    Args:
        tags: the registry version's tags.
        run_metrics: reads the training run's metrics (called only when the tag is missing).
    """
    for source, values in (("version tag", lambda: tags), ("run metric", run_metrics)):
        try:
            gain = float(values()["bench_psnr_gain"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(gain):
            return gain, source
    return None, ""


def track_gains(values: Mapping[str, Any]) -> dict[str, float]:
    """The benchmark gain over bicubic (dB) on each track, from a version's tags or its run's
    metrics: ``bench_psnr_gain`` is the clean track, ``bench_psnr_gain_<track>`` a coded one
    (the keys ``videoboost.evaluation.benchmark.track_key`` writes); the mean over the tracks
    and anything that is not a finite number are left out. Clean first, then by name.
    """
    gains: dict[str, float] = {}
    for key, value in values.items():
        if key == "bench_psnr_gain":
            track = "clean"
        elif key.startswith("bench_psnr_gain_") and key not in _NOT_TRACKS:
            track = key.removeprefix("bench_psnr_gain_")
        else:
            continue
        try:
            gain = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(gain):
            gains[track] = gain
    return dict(sorted(gains.items(), key=lambda kv: (kv[0] != "clean", kv[0])))


# Keys under bench_psnr_gain_ that are not a track's gain.
_NOT_TRACKS = frozenset({"bench_psnr_gain_mean", "bench_psnr_gain_source"})


def _run_metrics(run_id: str | None) -> dict[str, float]:
    """The latest metrics of an MLflow run ({} without a run, or when it cannot be read: the
    figures are for display, an import does not fail for them)."""
    if not run_id:
        return {}
    from mlflow.exceptions import MlflowException

    from videoboost.mlops import tracking

    client = tracking._mlflow().MlflowClient()
    try:  # one attempt: retries would only delay the import for a figure
        run = tracking.with_store_retries(
            lambda: client.get_run(run_id), f"reading run {run_id}", attempts=1
        )
    except (MlflowException, VideoBoostError):
        return {}
    return dict(run.data.metrics)


def _fetch_registered(uri: str, folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The ``.keras`` file and scale of a logged MLflow Keras model, without TensorFlow.

    Copies the artifact as logged (no load/save round trip) and reads ``scale`` from the
    logged model's metadata. Returns None when that is not possible (no keras flavor, no
    ``scale`` metadata, or nothing at ``uri``): the caller then loads the model with
    :func:`videoboost.mlops.tracking.load_generator`, which also words the error.
    """
    import yaml

    from videoboost.mlops import tracking

    mlflow = tracking._mlflow()
    tracking.setup()
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
        meta = yaml.safe_load((local / "MLmodel").read_text())
        keras_file = local / meta["flavors"]["keras"]["data"] / "model.keras"
        scale = int(meta["metadata"]["scale"])
    except Exception:  # many MLflow error types; the fallback reports properly
        return None
    if not keras_file.is_file():
        return None
    version = tracking._resolve_version(uri)
    return keras_file, {
        "uri": uri,
        "scale": scale,
        "version": version,
        "run_id": meta.get("run_id"),
    }


def import_model(model: str | None = None, *, reuse: bool = True):
    """Put a generator into the BentoML model store.

    A registry or run URI is copied as logged (its ``.keras`` file, ``scale`` from the logged
    metadata; TensorFlow is not needed). A ``.keras``/``.h5`` file is loaded and re-saved as
    ``.keras``. The service checks the scale against the network when it starts.

    Args:
        model: MLflow URI (``models:/videoboost-generator@champion``, ``models:/.../3``,
            ``runs:/...``) or a ``.keras``/``.h5`` file; None = the registry's champion.
        reuse: return an existing BentoML model imported from the same registry version (or
            the same file content), with the same benchmark tags, instead of adding a copy.

    Returns:
        The ``bentoml.Model`` (``.tag``, ``.info.labels``, ``.path``).

    Raises:
        ModelNotFound: nothing at ``model`` (or no champion), with what to do.
    """
    import shutil

    from videoboost.mlops.tracking import CHAMPION, MODEL_NAME, load_generator

    uri = model or f"models:/{MODEL_NAME}@{CHAMPION}"
    with tempfile.TemporaryDirectory(prefix="videoboost-import-") as tmp:
        fetched = None
        if uri.startswith(("models:/", "runs:/")):
            fetched = _fetch_registered(uri, Path(tmp))
        if fetched is None:
            generator, info = load_generator(model)
            keras_file = Path(tmp) / MODEL_FILE
            generator.save(keras_file)
        else:
            keras_file, info = fetched
        key = _source_key(info)
        bentoml = _bentoml()
        from bentoml.exceptions import NotFound

        details = _registry_details(info.get("version"))
        metrics = {k: v for k, v in details.items() if k.startswith(_METRIC_TAG_PREFIXES)}
        if reuse:
            try:
                existing = bentoml.models.list(BENTO_MODEL)
            except NotFound:  # no model of that name yet
                existing = []
            for candidate in existing:
                # Same source, and its scores still the registry's: a version evaluated since
                # its import is imported again, so the bento states the current figures.
                labels = candidate.info.labels
                if labels.get("source_key") == key and metrics == {
                    k: v for k, v in labels.items() if k.startswith(_METRIC_TAG_PREFIXES)
                }:
                    return candidate
        labels = {
            "mlflow_model": MODEL_NAME if info.get("version") is not None else "",
            "mlflow_version": str(info.get("version") or ""),
            "mlflow_run_id": details.get("run_id") or str(info.get("run_id") or ""),
            "scale": str(info["scale"]),
            "source": str(info["uri"]),
            "source_key": key,
            **metrics,
        }
        metadata = {
            "scale": int(info["scale"]),
            "registry_version": str(info.get("version") or ""),
            "source_uri": str(info["uri"]),
            "mlflow_tags": details,
        }
        run_metrics = functools.cache(lambda: _run_metrics(details.get("run_id")))
        gain, gain_source = benchmark_gain(details, run_metrics)
        if gain is not None:  # the service's OpenAPI page states it
            metadata.update(bench_psnr_gain=gain, bench_psnr_gain_source=gain_source)
        # The service's page shows the gain per benchmark track and links the version's page.
        gains = track_gains({**run_metrics(), **details})
        if gains:
            metadata["bench_track_gains"] = gains
        if info.get("version") is not None:
            from videoboost.mlops.tracking import version_url

            url = version_url(str(info["version"]))
            if url:
                metadata["mlflow_version_url"] = url
        int8_folder = Path(tmp) / INT8_FOLDER
        check = check_runtimes(keras_file, int8_folder, info)
        labels["runtime_refused"] = ",".join(check["refused"])
        metadata.update(runtime_fidelity=check["fidelity"], runtime_fidelity_host=check["host"])
        with bentoml.models.create(BENTO_MODEL, labels=labels, metadata=metadata) as bento_model:
            shutil.copyfile(keras_file, bento_model.path_of(MODEL_FILE))
            if int8_folder.is_dir():
                shutil.copytree(int8_folder, bento_model.path_of(INT8_FOLDER))
    return bento_model


INT8_FOLDER = "int8"  # the NNCF int8 OpenVINO IR inside a BentoML model


def int8_model(bento_model) -> Path | None:
    """The int8 IR shipped with a BentoML model (``.xml``), or None for an older import."""
    from videoboost.inference.runtimes import OPENVINO_XML

    xml = Path(bento_model.path_of(INT8_FOLDER)) / OPENVINO_XML
    return xml if xml.is_file() else None


def check_runtimes(keras_file: Path, int8_folder: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Once per imported model: the int8 model, and every runtime on the held-out benchmark.

    The int8 IR is written into ``int8_folder`` (it ships in the bento) and, for a registry
    version, logged to its run as ``int8_openvino/``; the fidelity table becomes the version's
    ``runtime_fidelity`` tag. A runtime more than ``MAX_LOSS_DB`` below tf-f32 is listed in
    ``refused`` and the service never picks it.
    """
    import json

    from videoboost.evaluation import runtime_select
    from videoboost.inference import runtimes
    from videoboost.inference.engine import infer_window
    from videoboost.mlops.tracking import load_generator

    generator, _ = load_generator(str(keras_file))
    # A video-tier model calibrates on aligned windows of real neighbours.
    frames = runtime_select.calibration_frames(window=infer_window(generator))
    ov_model = None
    try:
        # Converted once: the int8 model is made from a copy, the ov-* runtimes use the original.
        ov_model = runtimes.openvino_model(generator)
        quantised = runtimes.quantize_openvino(ov_model.clone(), frames)
        xml = runtimes.save_openvino_model(quantised, int8_folder)
    except ImportError:  # no OpenVINO/NNCF in this environment: no int8 candidate
        xml = None
    fidelity = runtime_select.benchmark_fidelity(generator, int8_model=xml, ov_model=ov_model)
    refused = runtime_select.refused_by(fidelity)
    host = runtime_select.detect_host().describe()
    version = info.get("version")
    if version is not None:
        from videoboost.mlops import tracking

        client = tracking._mlflow().MlflowClient()
        summary = {k: v for k, v in fidelity.items() if not k.startswith("_")}
        tracking.with_store_retries(
            lambda: client.set_model_version_tag(
                tracking.MODEL_NAME,
                str(version),
                "runtime_fidelity",
                json.dumps({"host": host, "max_loss_db": runtime_select.MAX_LOSS_DB, **summary}),
            ),
            "tagging the model version",
        )
        run_id = client.get_model_version(tracking.MODEL_NAME, str(version)).run_id
        if xml is not None and run_id:
            tracking.with_store_retries(
                lambda: client.log_artifacts(run_id, str(int8_folder), "int8_openvino"),
                "logging the int8 model",
            )
    return {"fidelity": fidelity, "refused": sorted(refused), "host": host}


def resolve_model(tag: str | None = None):
    """The BentoML model to serve: ``tag``, or the latest ``videoboost-generator``.

    Raises:
        ModelNotFound: not in the store, with how to import one.
    """
    bentoml = _bentoml()
    from bentoml.exceptions import NotFound

    wanted = tag or f"{BENTO_MODEL}:latest"
    try:
        return bentoml.models.get(wanted)
    except (NotFound, ValueError) as exc:
        raise ModelNotFound(_no_model_message(wanted)) from exc


def model_file(bento_model) -> Path:
    """The ``.keras`` file inside a BentoML model."""
    return Path(bento_model.path_of(MODEL_FILE))


def build_bento(model: str | None = None, *, bento_model_tag: str | None = None) -> str:
    """Import ``model`` (default: the champion) and run ``bentoml build``; returns the tag.

    The bento gets the model's labels (MLflow name, version, run id, scale, metrics) and the
    bento argument ``model=<BentoML model tag>``, so serving it always loads that version.

    Args:
        model: as in :func:`import_model`; ignored when ``bento_model_tag`` is given.
        bento_model_tag: build around a model already in the BentoML store.

    Returns:
        ``"videoboost:<version>"``.

    Raises:
        ModelNotFound: no such model (or no champion).
        BuildFailed: ``bentoml build`` failed (its output is in the message).
    """
    bento_model = resolve_model(bento_model_tag) if bento_model_tag else import_model(model)
    labels = {k: v for k, v in bento_model.info.labels.items() if v and k != "source_key"}
    labels["bento_model"] = str(bento_model.tag)
    # A subprocess, not bentoml.bentos.build_bentofile: the build imports service/service.py,
    # whose model tag is read at import, and an earlier import in this process would be reused.
    cmd = [sys.executable, "-m", "bentoml", "build", "-f", str(BENTOFILE), "-o", "tag"]
    cmd += ["--arg", f"model={bento_model.tag}"]
    for key, value in sorted(labels.items()):
        cmd += ["--label", f"{key}={value}"]
    cmd.append(str(PROJECT_ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        # `bentoml build` runs from the build context; keep stray files out of it.
        # The build must see the store the model was just imported into: BentoML fixed its
        # home at its first import here, and BENTOML_HOME may have changed (or gone) since.
        env = {**os.environ, "BENTOML_HOME": bentoml_home()}
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env, timeout=600)
    tag = next(
        (
            line.split("__tag__:", 1)[1].strip()
            for line in out.stdout.splitlines()
            if "__tag__:" in line
        ),
        None,
    )
    if out.returncode != 0 or not tag:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise BuildFailed(f"`bentoml build` failed (exit {out.returncode}):\n{tail}")
    return tag


def main(argv: list[str] | None = None) -> int:
    """``python -m videoboost.mlops.serving [MODEL]``: import and build, print the bento tag."""
    args = sys.argv[1:] if argv is None else argv
    try:
        print(build_bento(args[0] if args else None))
    except VideoBoostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
