"""The retraining pipeline: build -> validate -> train -> evaluate & promote -> package.

Each step is also a flow of its own, so it can be run (and retried) alone. No
``from __future__ import annotations``: Prefect validates parameters from these annotations.
"""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.links import REPORT_ARTIFACT, link_artifacts, md_link, mlflow_pages, no_server_note
from flows.params import RetrainParams
from videoboost.config import DatasetConfig, PromoteConfig, TrainConfig
from videoboost.errors import ValidationFailed
from videoboost.mlops.tracking import MODEL_NAME
from videoboost.state import configure_environment, home

configure_environment()

# Talking to the tracking store is I/O that can hiccup (a locked SQLite file, a restarting
# server); training itself is not retried: it resumes from its checkpoint instead.
STORE_RETRIES = {"retries": 2, "retry_delay_seconds": [5, 20]}


def _md_table(rows: dict[str, Any]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows.items()]
    return "\n".join(lines)


def _validation_md(validation: dict[str, Any] | None) -> str:
    """The Great Expectations result in a few lines: counts, then each failed expectation."""
    if not validation:
        return "Validation: not run."
    failures = validation.get("failures") or []
    evaluated = validation.get("evaluated", 0)
    head = "PASSED" if validation.get("success") else "FAILED"
    lines = [f"Validation **{head}**: {evaluated - len(failures)}/{evaluated} expectations hold."]
    lines += [
        f"- FAILED `{f.get('expectation')}` ({f.get('column') or 'table'}): {f.get('detail')}"
        for f in failures
    ]
    return "\n".join(lines)


@task(cache_policy=NO_CACHE)
def build_dataset_task(sources: list[str], out: str, cfg: DatasetConfig) -> dict[str, Any]:
    from videoboost.mlops.validation import build_validated_dataset

    logger = get_run_logger()
    try:
        info = build_validated_dataset(sources, out, cfg, progress=False)
    except ValidationFailed as exc:
        # A rejected dataset starts no MLflow run, so its report has no web address: the
        # failures themselves go in the artifact, and the path of the full page for a shell.
        create_markdown_artifact(
            key="dataset-validation",
            markdown=f"## Dataset validation FAILED\n\n```\n{exc}\n```\n\n"
            f"The full report (a self-contained HTML page) is kept on the flow's machine at "
            f"`{exc.docs}`; nothing was published or trained.",
            description="Great Expectations result of the rejected dataset",
        )
        raise
    for s in info.skipped:
        logger.warning("skipped %s: %s", s.path, s.skipped)
    summary = {
        "version": info.version,
        "path": str(info.path),
        "cached": info.cached,
        "train_frames": info.counts["train"],
        "val_frames": info.counts["val"],
        "validation": "passed" if (info.validation or {}).get("success") else "not run",
        "data_docs": str(info.docs),
        "skipped": [f"{s.path}: {s.skipped}" for s in info.skipped],
    }
    create_markdown_artifact(
        key="dataset",
        markdown="## Dataset\n\n"
        + _md_table({k: v for k, v in summary.items() if k not in ("skipped", "data_docs")})
        + "\n\n"
        + _validation_md(info.validation)
        + "\n\nThe full validation report is logged with the training run (see the "
        "`training` and `retrain-summary` artifacts); on this machine it is "
        f"`{info.docs}`.",
        description="Dataset version, counts and validation",
    )
    logger.info("dataset %s (%s)", info.version, "cache hit" if info.cached else "built")
    return summary


def _warm_start_from(init: str | None, cfg: TrainConfig) -> str | None:
    """The model the run starts from (:func:`videoboost.mlops.bases.resolve_init`): the default
    ``"champion"`` falls back to the shipped base of this tier and scale while there is no
    champion of them, then to a cold start; the log says which and why."""
    from videoboost.mlops.bases import resolve_init

    uri, why = resolve_init(init, cfg.generator)
    get_run_logger().info("training starts from %s", why)
    return uri


@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def register_base_task(tier: str, scale: int) -> dict[str, Any] | None:
    """The shipped base of this tier and scale as a registered version (once: a later run finds
    it by its SHA-256); None when no base of them ships."""
    from videoboost.mlops.bases import register_base

    base = register_base(tier, scale)
    logger = get_run_logger()
    if base is None:
        logger.info("no shipped %s x%d base", tier, scale)
    elif base["registered"]:
        logger.info("registered the shipped base %s as version %s", base["file"], base["version"])
    else:
        logger.info("the shipped base is version %s already", base["version"])
    return base


def _epoch_log(logger):
    """A Keras callback writing one line per epoch to the flow-run log (what the Prefect UI
    shows of training; the console has its own progress)."""
    import keras

    from videoboost.training.train import epoch_summary

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            phase = getattr(self.model, "mode", None) or "pixel"
            logger.info("epoch %d (%s): %s", epoch + 1, phase, epoch_summary(logs or {}, phase))

    return EpochLog()


@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def train_task(dataset_dir: str, cfg: TrainConfig, init: str | None = None) -> dict[str, Any]:
    from videoboost.mlops.tracking import train_run

    init = _warm_start_from(init, cfg)
    result = train_run(
        dataset_dir, cfg, progress=True, init=init, callbacks=[_epoch_log(get_run_logger())]
    )
    summary = {
        "run_id": result["run_id"],
        "version": result["version"],
        "warm_start": result.get("parent") or "none (cold start)",
        **{k: round(v, 4) for k, v in result["final"].items()},
    }
    gan = result.get("gan_check") or {}
    if gan:
        summary.update(
            bench_psnr_pixel_phase=round(gan["bench_psnr_pixel"], 3),
            bench_psnr_gan_phase=round(gan["bench_psnr_gan"], 3),
            gan_phase_kept=gan["kept"],
        )
    pages = mlflow_pages(result["run_id"], result.get("experiment_id"), result["version"])
    summary["pages"] = pages
    table = {k: v for k, v in summary.items() if k != "pages"}
    table["run_id"] = md_link(f"`{result['run_id']}`", pages["run"])
    table["version"] = md_link(f"{MODEL_NAME} v{result['version']}", pages["version"])
    create_markdown_artifact(
        key="training",
        markdown="## Training run\n\n"
        + _md_table(table)
        + "\n\n"
        + " · ".join(
            [
                md_link("validation report", pages["report"], f"(`{REPORT_ARTIFACT}`)"),
                md_link("comparison images", pages["images"], "(`samples/`, `images/`)"),
            ]
        )
        + ("\n\n" + no_server_note() if not pages["run"] else ""),
        description="MLflow run, registered version and final validation metrics",
    )
    link_artifacts(pages)
    return summary


@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def promote_task(
    version: str, cfg: PromoteConfig, videos: list[str] | None, frames: int | None
) -> dict[str, Any]:
    from videoboost.config import BenchmarkConfig
    from videoboost.mlops.registry import promote

    bench_cfg = BenchmarkConfig(frames=frames) if frames else BenchmarkConfig()
    decision = promote(version, cfg, sources=videos, bench_cfg=bench_cfg)
    text = decision.summary()
    get_run_logger().info("%s", text)
    from videoboost.mlops.tracking import version_url

    page = version_url(decision.candidate)
    where = md_link(
        f"{MODEL_NAME} v{decision.candidate}", page, "(its description in the MLflow UI)"
    )
    create_markdown_artifact(
        key="promotion",
        markdown=f"## Promotion decision\n\n```\n{text}\n```\n\nRecorded on {where}: the "
        "decision, the table against bicubic and the champion, and the lineage."
        + ("" if page else "\n\n" + no_server_note()),
        description="Candidate vs bicubic and vs the champion on held-out footage",
    )
    cand = decision.candidate_report.metrics if decision.candidate_report else {}
    champ = decision.champion_report.metrics if decision.champion_report else {}
    return {
        "decision": decision.decision,
        "promoted": decision.decision == "promoted",
        "reason": decision.reason,
        "candidate": decision.candidate,
        "champion": decision.champion,
        "aliases": decision.moves,
        "benchmark": decision.benchmark,
        "candidate_metrics": cand,
        "champion_metrics": champ,
        "summary": text,
    }


@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def package_task() -> str:
    from videoboost.mlops.serving import build_bento

    tag = str(build_bento())
    create_markdown_artifact(key="bento", markdown=f"## Bento\n\n`{tag}`", description="Bento tag")
    return tag


@flow(name="build-dataset")
def build_dataset(params: RetrainParams = RetrainParams()) -> dict[str, Any]:
    out = params.dataset_dir or str(home() / "datasets" / "retrain")
    return build_dataset_task(params.sources, out, params.dataset)


@flow(name="train")
def train(
    dataset_dir: str, cfg: TrainConfig = TrainConfig(), init: str | None = None
) -> dict[str, Any]:
    return train_task(dataset_dir, cfg, init)


@flow(name="evaluate-and-promote")
def evaluate_and_promote(
    version: str,
    cfg: PromoteConfig = PromoteConfig(),
    videos: list[str] | None = None,
    frames: int | None = None,
) -> dict[str, Any]:
    return promote_task(version, cfg, videos, frames)


@flow(name="package")
def package() -> str:
    return package_task()


@flow(name="retrain")
def retrain(params: RetrainParams = RetrainParams()) -> dict[str, Any]:
    """build -> validate -> train -> promote -> package (only when the champion changed)."""
    dataset = build_dataset(params)
    train_cfg = params.train
    if train_cfg.generator.scale != params.dataset.scale:
        train_cfg = train_cfg.model_copy(
            update={
                "generator": train_cfg.generator.model_copy(update={"scale": params.dataset.scale})
            }
        )
    base = None
    if params.register_base and params.init in ("champion", "base"):
        base = register_base_task(train_cfg.generator.tier, train_cfg.generator.scale)
        if base and base["registered"]:
            # A new base faces the gate like any candidate: on an empty registry it becomes the
            # champion if it beats bicubic, and the candidate below then fine-tunes from it.
            base["promotion"] = evaluate_and_promote(
                base["version"], params.promote, params.benchmark_videos, params.benchmark_frames
            )
    run = train(dataset["path"], train_cfg, params.init)
    decision = evaluate_and_promote(
        run["version"], params.promote, params.benchmark_videos, params.benchmark_frames
    )
    bento = None
    if params.package and decision.get("promoted"):
        bento = package()
    result = {"dataset": dataset, "base": base, "run": run, "promotion": decision, "bento": bento}
    create_markdown_artifact(
        key="retrain-summary", markdown=_summary_md(result), description="One line per stage"
    )
    return result


def _summary_md(result: dict[str, Any]) -> str:
    """The retrain's summary artifact: one row per stage, each linking where it is recorded."""
    dataset, run, decision = result["dataset"], result["run"], result["promotion"]
    pages = run.get("pages") or {}
    note = "(see the `dataset` artifact)"
    rows = {
        "dataset version": f"`{dataset['version']}`"
        + (" (cache hit)" if dataset["cached"] else ""),
        "validation": md_link(f"{dataset['validation']}: report", pages.get("report"), note),
        "MLflow run": md_link(f"`{run['run_id']}`", pages.get("run")),
        "comparison images": md_link("epoch by epoch", pages.get("images"), "(run artifacts)"),
        "registered version": md_link(f"{MODEL_NAME} v{run['version']}", pages.get("version")),
        "decision": f"**{decision.get('decision')}**: {decision.get('reason', '')}",
        "bento": f"`{result['bento']}`" if result["bento"] else "unchanged",
    }
    text = "## Retrain\n\n" + _md_table(rows)
    if not pages.get("run"):
        text += "\n\n" + no_server_note()
    return text
