"""MLflow at the edge: the experiment, per-epoch logging, the generator in the registry.

The only module (with :mod:`videoboost.mlops.registry`) that imports MLflow. Tracking URI comes from
``MLFLOW_TRACKING_URI``, else a SQLite store under the state folder (see
:mod:`videoboost.state`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videoboost import state
from videoboost.data.align import still_window
from videoboost.errors import StoreUnavailable, VideoBoostError
from videoboost.inference.engine import infer_scale
from videoboost.mlops.generators import (
    _fix_keras_input_example,
    _resolve_version,
    lineage_tags,
    load_generator,
    load_init,
    log_generator,
    register,
    signature,
)
from videoboost.mlops.store import (
    CHALLENGER,
    CHAMPION,
    EVALUATION_JSON,
    EXPERIMENT,
    MODEL_NAME,
    PIP_REQUIREMENTS,
    VERSION_TAGS,
    _mlflow,
    artifact_url,
    git_commit,
    run_url,
    safe_uri,
    setup,
    ui_base,
    ui_command,
    version_url,
    with_store_retries,
)

# The MLflow edge's public face: store, models and training runs under one import.
__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EVALUATION_JSON",
    "EXPERIMENT",
    "MODEL_NAME",
    "PIP_REQUIREMENTS",
    "VERSION_TAGS",
    "_fix_keras_input_example",
    "_mlflow",
    "_resolve_version",
    "artifact_url",
    "benchmark_scorer",
    "git_commit",
    "infer_scale",
    "lineage_tags",
    "load_generator",
    "load_init",
    "log_dataset",
    "log_generator",
    "log_start_image",
    "make_epoch_logger",
    "register",
    "run_url",
    "safe_uri",
    "setup",
    "signature",
    "train_run",
    "ui_base",
    "ui_command",
    "version_url",
    "with_store_retries",
]


def make_epoch_logger(samples_dir: Path):
    """A Keras callback logging the epoch keys (step = epoch) and that epoch's comparison image
    (written to ``samples_dir`` by the training core's sample callback, which runs first)."""
    import keras

    from videoboost.training.train import EPOCH_KEYS, sample_path

    mlflow = _mlflow()

    class MlflowEpochLogger(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            # The replica count exists only once training built its strategy. Params are
            # immutable: a run resumed on another cluster size keeps its first count and
            # records the new one as a tag.
            replicas = str(self.model.distribute_strategy.num_replicas_in_sync)
            run_id = mlflow.active_run().info.run_id
            logged = with_store_retries(
                lambda: mlflow.get_run(run_id).data.params.get("replicas"), "reading the run"
            )
            if logged is None:
                with_store_retries(lambda: mlflow.log_param("replicas", replicas), "logging")
            elif logged != replicas:
                with_store_retries(lambda: mlflow.set_tag("replicas_resumed", replicas), "logging")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            metrics = {k: float(logs[k]) for k in EPOCH_KEYS if k in logs}
            # The discriminator's numbers exist only in the adversarial phase; logging them as 0
            # before made the charts look broken. `phase` (1 pixel, 2 adversarial) shows which.
            adversarial = getattr(self.model, "mode", None) == "adversarial"
            if not adversarial:
                metrics = {k: v for k, v in metrics.items() if k not in ("d_loss", "adv_loss")}
            metrics["phase"] = 2.0 if adversarial else 1.0
            with_store_retries(
                lambda: mlflow.log_metrics(metrics, step=epoch + 1), "logging epoch metrics"
            )
            sample = sample_path(samples_dir, epoch + 1)
            if sample.is_file():
                import cv2

                img = cv2.imread(str(sample))[..., ::-1]
                mlflow.log_image(img, key="comparison", step=epoch + 1)
                mlflow.log_artifact(str(sample), "samples")

    return MlflowEpochLogger()


def log_dataset(info) -> None:
    """The dataset as an MLflow input, its version as tags, its GX report as artifacts."""
    mlflow = _mlflow()
    from videoboost.data.shards import load_manifest

    manifest = load_manifest(info.path)
    ds = mlflow.data.from_pandas(
        manifest, source=str(info.path), name=f"videoboost-dataset-{info.version}"
    )
    mlflow.log_input(ds, context="training")
    from videoboost.config import flatten
    from videoboost.data.shards import load_config

    degrade = load_config(info.path).degrade
    mlflow.set_tags(
        {
            "dataset_version": info.version,
            "dataset_path": str(info.path),
            "scale": info.scale,
            "degrade_profile": degrade.profile,
        }
    )
    # How the LR inputs were made, ranges of the `real` profile included: a run's params say
    # what kind of footage its model learned.
    mlflow.log_params(flatten(degrade, "degrade."))
    for name in ("validation.json", "dataset.json"):
        if (info.path / name).is_file():
            mlflow.log_artifact(str(info.path / name), "dataset")
    docs = info.path / "gx" / "uncommitted" / "data_docs"
    if docs.is_dir():
        mlflow.log_artifacts(str(docs), "dataset/data_docs")


def train_run(
    dataset_dir: str | Path,
    cfg,
    *,
    resume_run_id: str | None = None,
    progress: bool = True,
    register_model: bool = True,
    init: str | None = None,
    callbacks: Sequence[Any] = (),
    checkpoint_file: str | Path | None = None,
    resume_file: str | Path | None = None,
) -> dict[str, Any]:
    """Train with every epoch logged to MLflow, then log and register the generator.

    With ``checkpoint_file`` every epoch's checkpoint is also packed into that one file
    (:mod:`videoboost.training.checkpoint_file`), which another machine resumes with
    ``resume_file``: a new MLflow run there continues the same epochs, steps, schedule and crop
    stream (its config comes from the file; ``dataset_dir`` None takes the file's dataset path),
    and keeps writing the same file.

    With ``resume_run_id`` the same MLflow run continues from its last checkpoint. With
    ``init`` (``"champion"`` or a model URI/path) training starts from that generator's weights
    (same tier and scale); its URI and registry version are the run's and the new version's
    ``parent_*`` tags (lineage). With an adversarial phase, the held-out benchmark decides
    whether its weights or the pixel phase's are kept (see :func:`videoboost.training.train.train`).
    Returns ``{"run_id", "version", "final", "history", "work_dir", "parent", "gan_check"}``.

    Under ``strategy: multi_worker`` only the chief (see :func:`videoboost.training.distribute.is_chief`)
    logs and registers; every other worker trains in lockstep and writes nothing to the store.
    """
    if os.environ.get("TF_CONFIG"):
        other = _train_as_other_worker(dataset_dir, cfg, resume_run_id, progress)
        if other is not None:
            return other
    mlflow = _mlflow()
    from videoboost.config import TrainConfig, flatten
    from videoboost.data.shards import load_info
    from videoboost.training.train import train

    experiment_id = setup()
    client = mlflow.MlflowClient()
    file_meta = None
    if resume_file:
        file_meta = _read_checkpoint_file(resume_file)
        cfg = TrainConfig.model_validate(file_meta["config"])
        dataset_dir = dataset_dir or file_meta["dataset"]["path"]
        checkpoint_file = checkpoint_file or resume_file
    if resume_run_id:
        run = with_store_retries(lambda: client.get_run(resume_run_id), "reading the run")
        cfg = TrainConfig.model_validate_json(run.data.tags["config_json"])
        dataset_dir = run.data.tags["dataset_path"]
        if run.data.tags.get("registered_version"):
            raise VideoBoostError(
                f"run {resume_run_id} already finished and registered version "
                f"{run.data.tags['registered_version']}; nothing to resume"
            )
    info = load_info(dataset_dir)
    if file_meta and file_meta["dataset"]["version"] != info.version:
        print(
            f"note: {resume_file} trained on dataset {file_meta['dataset']['version']}; it "
            f"continues on {info.version} ({info.path})",
            flush=True,
        )
    parent, parent_info = None, {}
    if init and not resume_run_id and not resume_file:
        parent, parent_info = load_init(init, cfg.generator.scale)
    scorer = benchmark_scorer(cfg.generator.scale) if cfg.gan_epochs else None

    # Readable in the runs list: tier, scale, dataset version, start time (UTC).
    run_name = None if resume_run_id else (
        f"{cfg.generator.tier}-x{cfg.generator.scale}-{info.version[:8]}-"
        f"{time.strftime('%m%d-%H%M', time.gmtime())}"
    )  # fmt: skip
    with with_store_retries(
        lambda: mlflow.start_run(
            run_id=resume_run_id, experiment_id=experiment_id, run_name=run_name
        ),
        "starting the run",
    ) as run:
        run_id = run.info.run_id
        work_dir = state.home() / "runs" / run_id
        if not resume_run_id:
            mlflow.log_params(flatten(cfg))
            mlflow.set_tags(
                {
                    "config_json": cfg.model_dump_json(),
                    "git_commit": git_commit(),
                    "tier": cfg.generator.tier,
                    "work_dir": str(work_dir),
                    **lineage_tags(parent_info),
                }
            )
            log_dataset(info)
            mlflow.log_dict(cfg.model_dump(), "config.json")
        file_cb = []
        if checkpoint_file:
            file_cb = [_checkpoint_file_callback(checkpoint_file, file_meta, work_dir, cfg, info,
                                                 run_id)]  # fmt: skip
            mlflow.set_tag("checkpoint_file", str(Path(checkpoint_file).resolve()))
        if resume_file:
            from videoboost.training import checkpoint_file as ckpt_file

            ckpt_file.unpack(resume_file, work_dir / "checkpoint")
            mlflow.set_tags({"resumed_from_file": str(resume_file),
                             "resumed_from_run": file_meta.get("run_id", "")})  # fmt: skip
        logger = make_epoch_logger(work_dir / "samples")
        if resume_run_id or resume_file:
            _relog_checkpointed_epochs(client, run_id, work_dir)
        else:
            log_start_image(info.path, cfg, parent, parent_info, work_dir / "samples")
        try:
            result = train(
                dataset_dir,
                cfg,
                work_dir,
                callbacks=[*file_cb, logger, *callbacks],
                resume=bool(resume_run_id or resume_file),
                progress=progress,
                init=parent,
                scorer=scorer,
            )
        except StoreUnavailable as exc:
            raise StoreUnavailable(
                f"{exc} Training stopped with its checkpoint kept: once the store is back, "
                f"continue with `videoboost train --resume {run_id}`"
            ) from exc
        final = {f"final_{k}": v for k, v in result.final.items()}
        final["train_minutes"] = result.elapsed_s / 60
        final["train_steps"] = result.steps
        if result.elapsed_s > 0:  # crops per second of training, the throughput figure
            final["train_crops_per_s"] = result.steps * cfg.batch_size / result.elapsed_s
        mlflow.set_tags({"ended_by": result.ended_by, "precision": result.precision})
        gan = result.gan_check
        if gan:
            final.update(bench_psnr_pixel_phase=gan["bench_psnr_pixel"],
                         bench_psnr_gan_phase=gan["bench_psnr_gan"])  # fmt: skip
            mlflow.set_tag("gan_phase_kept", gan["kept"])
        mlflow.log_metrics(final)
        run_tags = run.data.tags if resume_run_id else {}
        parent_tags = {k: v for k, v in run_tags.items() if k.startswith("parent_")}
        parent_tags = parent_tags or lineage_tags(parent_info)
        version = None
        if register_model:
            lr, _ = _first_val_frame(info.path)
            meta = {
                "scale": cfg.generator.scale,
                "tier": cfg.generator.tier,
                "dataset_version": info.version,
            }
            mv = _registered_from(client, run_id)  # killed after registering, before the tag
            if mv is None:
                example = still_window(lr[:16, :16], cfg.generator.window)
                if cfg.generator.window:
                    meta["window"] = cfg.generator.window
                model_info = log_generator(result.generator, meta, example[None])
                mv = register(model_info.model_uri, {k: meta[k] for k in VERSION_TAGS})
            version = str(mv.version)
            if not mv.description:  # a resumed run may already have written it
                card, record = _version_card(
                    version, run, experiment_id, cfg, info, parent_tags, result
                )
                with_store_retries(
                    lambda: client.update_model_version(MODEL_NAME, version, description=card),
                    "describing the version",
                )
                mlflow.log_dict(record, EVALUATION_JSON)
            mlflow.set_tag("registered_version", version)
    return {
        "run_id": run_id,
        "run_url": run_url(run_id, experiment_id),
        "experiment_id": experiment_id,
        "version": version,
        "final": result.final,
        "history": result.history,
        "work_dir": work_dir,
        "config": json.loads(cfg.model_dump_json()),
        "parent": parent_tags.get("parent_model_uri"),
        "gan_check": result.gan_check,
    }


def _profile(dataset: Path) -> str:
    from videoboost.data.shards import load_config

    try:
        return load_config(dataset).degrade.profile
    except (OSError, ValueError, KeyError):
        return ""


def _version_card(version, run, experiment_id, cfg, info, parent_tags, result):
    """The new version's description and the run's ``evaluation.json`` (same facts)."""
    from videoboost.mlops.version_card import registration_card

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    commit = run.data.tags.get("git_commit") or git_commit()
    card = registration_card(
        version=version,
        tier=cfg.generator.tier,
        scale=cfg.generator.scale,
        time=now,
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        run_name=run.info.run_name,
        dataset_version=info.version,
        dataset_path=str(info.path),
        profile=_profile(info.path),
        parent=parent_tags,
        final=result.final,
        git_commit=commit,
    )
    record = {
        "model": MODEL_NAME,
        "version": version,
        "registered": now,
        "run_id": run.info.run_id,
        "tier": cfg.generator.tier,
        "scale": cfg.generator.scale,
        "dataset": {"version": info.version, "path": str(info.path)},
        "lineage": dict(parent_tags),
        "git_commit": commit,
        "validation": {k: round(float(v), 5) for k, v in result.final.items()},
        "train_minutes": round(result.elapsed_s / 60, 3),
        "ended_by": result.ended_by,
        "gan_check": result.gan_check or None,
        "decisions": [],  # appended by videoboost.mlops.registry
    }
    return card, record


def log_start_image(dataset_dir, cfg, parent, parent_info: dict, samples_dir: Path) -> None:
    """Step 0 of the ``comparison`` images: the model before any training step.

    A cold start *is* bicubic (zero-initialised last convolution); a warm start shows its
    parent. Without it MLflow's image slider opens on an empty step until epoch 1 ends. Same
    frame and crops as the epochs' images (see ``videoboost.training.train.SampleImages``).
    """
    import cv2

    from videoboost.data.degrade import upscale_bicubic
    from videoboost.data.shards import centre_pair, load_frames
    from videoboost.evaluation.compare import comparison_image
    from videoboost.training.train import predict_frame, sample_path

    mlflow = _mlflow()
    (lr, hr), *_ = load_frames(dataset_dir, "val", limit=cfg.val_frames)[0]
    lr, hr = centre_pair(lr, hr, cfg.val_max_side)
    if parent is None:
        sr, label = upscale_bicubic(lr, cfg.generator.scale), "start = bicubic"
    else:
        version = parent_info.get("version")
        sr, label = predict_frame(parent, lr), f"start = v{version}" if version else "start"
    img = comparison_image(lr, sr, hr, label=label)
    samples_dir.mkdir(parents=True, exist_ok=True)
    path = sample_path(samples_dir, 0)
    cv2.imwrite(str(path), img[..., ::-1])
    with_store_retries(
        lambda: mlflow.log_image(img, key="comparison", step=0), "logging the start image"
    )
    with_store_retries(lambda: mlflow.log_artifact(str(path), "samples"), "logging")


def benchmark_scorer(scale: int):
    """``generator -> held-out benchmark PSNR`` averaged over the tracks (clean and coded
    input, what promotion compares; quality only, no throughput runs)."""
    from videoboost.config import BenchmarkConfig
    from videoboost.evaluation.benchmark import build_benchmark, evaluate_keras

    cfg = BenchmarkConfig(fps_runs=0)
    bench = build_benchmark(scale, cfg=cfg)
    return lambda generator: evaluate_keras(generator, bench, cfg).metrics["bench_psnr_mean"]


def _registered_from(client, run_id: str):
    """The version already registered from ``run_id``, if any: a run is registered once."""
    found = with_store_retries(
        lambda: client.search_model_versions(f"name='{MODEL_NAME}' and run_id='{run_id}'"),
        "listing the versions",
    )
    return min(found, key=lambda v: int(v.version)) if found else None


def _read_checkpoint_file(path: str | Path) -> dict[str, Any]:
    from videoboost.training import checkpoint_file as ckpt_file

    try:
        return ckpt_file.read_meta(path)
    except (OSError, ValueError) as exc:
        raise VideoBoostError(str(exc)) from exc


def _checkpoint_file_callback(path, file_meta, work_dir: Path, cfg, info, run_id: str):
    """The callback that packs each epoch's checkpoint into ``path``, with a new stretch."""
    from videoboost.training import checkpoint_file as ckpt_file
    from videoboost.training.train import training_precision

    meta = dict(file_meta or {})
    meta.setdefault("stretches", [])
    meta.update(
        config=json.loads(cfg.model_dump_json()),
        dataset={"version": info.version, "path": str(info.path)},
        run_id=meta.get("run_id", run_id),
    )
    try:  # what a base's model card reports: the profile and the corpus it came from
        from videoboost.data.corpus import MANIFEST, load_corpus
        from videoboost.data.shards import load_config

        meta["dataset_config"] = json.loads(load_config(info.path).model_dump_json())
        meta.setdefault(
            "corpus_manifest_sha256", load_corpus(MANIFEST, verify=False).manifest_sha256
        )
    except (OSError, ValueError, VideoBoostError):
        pass
    meta["runs"] = [*meta.get("runs", []), run_id]
    meta["stretches"].append(
        ckpt_file.new_stretch(
            commit=git_commit(),
            precision=training_precision(cfg),
            dataset_version=info.version,
            steps=int(meta.get("steps", 0)),
            elapsed_s=float(meta.get("elapsed_s", 0.0)),
        )
    )
    return ckpt_file.CheckpointFile(path, work_dir / "checkpoint", meta)


def _relog_checkpointed_epochs(client, run_id: str, work_dir: Path) -> None:
    """Log the epochs the checkpoint holds but the run does not (killed between the two)."""
    from videoboost.training.train import load_checkpoint_state

    ckpt = load_checkpoint_state(work_dir / "checkpoint")
    if not ckpt:
        return
    logged = {
        m.step
        for m in with_store_retries(
            lambda: client.get_metric_history(run_id, "val_psnr"), "reading the run's metrics"
        )
    }
    mlflow = _mlflow()
    for epoch, metrics in enumerate(ckpt["history"], start=1):
        if epoch not in logged and metrics:
            with_store_retries(
                lambda m=metrics, e=epoch: mlflow.log_metrics(m, step=e), "logging epoch metrics"
            )


def _train_as_other_worker(dataset_dir, cfg, resume_run_id: str | None, progress: bool):
    """A non-chief worker's part of a multi-worker run, or None when this process is the chief.

    It reads the store only to resume (the run's config and the chief's checkpoint folder,
    which must be on storage every worker sees) and returns ``run_id``/``version`` None.
    """
    from videoboost.config import TrainConfig
    from videoboost.training.distribute import is_chief, worker_name
    from videoboost.training.train import train

    work_dir = state.home() / "runs" / f"unused-{worker_name(cfg)}" if cfg else None
    if resume_run_id:
        mlflow = _mlflow()
        mlflow.set_tracking_uri(state.tracking_uri())
        run = with_store_retries(
            lambda: mlflow.MlflowClient().get_run(resume_run_id), "reading the run"
        )
        cfg = TrainConfig.model_validate_json(run.data.tags["config_json"])
        dataset_dir, work_dir = run.data.tags["dataset_path"], Path(run.data.tags["work_dir"])
    if is_chief(cfg):
        return None
    result = train(dataset_dir, cfg, work_dir, resume=bool(resume_run_id), progress=progress)
    return {
        "run_id": None,
        "run_url": None,
        "experiment_id": None,
        "version": None,
        "final": result.final,
        "history": result.history,
        "work_dir": None,
        "config": json.loads(cfg.model_dump_json()),
        "worker": worker_name(cfg),
    }


def _first_val_frame(dataset_dir: Path):
    from videoboost.data.shards import load_frames

    return load_frames(dataset_dir, "val", limit=1)[0][0]
