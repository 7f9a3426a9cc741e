"""Batch upscaling: a folder or list of videos (and images) -> upscaled outputs.

One task per file, submitted together so they run concurrently; a file that fails is reported
(task failed, listed in the artifact) while the others finish. No
``from __future__ import annotations``: Prefect validates parameters from these annotations.
"""

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from videoboost.errors import VideoBoostError
from videoboost.state import configure_environment

configure_environment()


class BatchFailed(VideoBoostError):
    """Some inputs of a batch failed; the others were written."""


@task(cache_policy=NO_CACHE, task_run_name="upscale-{job.src.name}")
def upscale_file(job, upscaler, model_id: str, height: int | None) -> dict[str, Any]:
    from videoboost.batch import upscale_jobs

    logger = get_run_logger()
    (outcome,) = upscale_jobs([job], upscaler, model_id=model_id, height=height,
                              progress=False, log=logger.info)  # fmt: skip
    if not outcome.ok:
        raise BatchFailed(f"{job.src}: {outcome.message}")
    return {"input": str(job.src), "output": str(job.dst), "result": outcome.message}


@flow(name="batch-upscale")
def batch_upscale(
    inputs: list[str],
    out_dir: str = ".state/outputs",
    model: str | None = None,
    height: int | None = None,
    tile: int = 512,
    batch: int = 4,
) -> dict[str, Any]:
    """Upscale every video/image of ``inputs`` (files or folders) into ``out_dir``.

    Args:
        inputs: files or folders (a folder contributes its top-level images and videos).
        out_dir: output folder; outputs keep the input names (images as PNG, videos as MP4).
        model: registry URI or path; default the champion. Resolved once to a fixed version,
            so a promotion during the batch cannot mix two models in one batch.
        height: optional output height (aspect kept; beyond the model's scale is Lanczos).
        tile, batch: engine settings (memory stays bounded by the tile size).
    """
    from videoboost.batch import model_identity, plan_jobs
    from videoboost.config import EngineConfig
    from videoboost.engine import Upscaler, keras_predict
    from videoboost.tracking import MODEL_NAME, load_generator

    logger = get_run_logger()
    generator, info = load_generator(model)
    if info.get("version"):
        info["uri"] = f"models:/{MODEL_NAME}/{info['version']}"
    logger.info("model %s (x%s)", info["uri"], info["scale"])
    upscaler = Upscaler(
        keras_predict(generator), info["scale"], EngineConfig(tile=tile, batch=batch)
    )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    jobs, problems = plan_jobs(inputs, out_dir)
    futures = [upscale_file.submit(job, upscaler, model_identity(info), height) for job in jobs]
    wait(futures)
    done, failed = [], [{"input": str(p), "error": why} for p, why in problems]
    for job, future in zip(jobs, futures, strict=True):
        if future.state.is_completed():
            done.append(future.result())
        else:
            failed.append({"input": str(job.src), "error": str(future.state.message)})
    rows = [{"input": d["input"], "output": d["output"], "status": "ok"} for d in done]
    rows += [{"input": f["input"], "output": "", "status": f"FAILED: {f['error']}"} for f in failed]
    create_table_artifact(key="batch-upscale", table=rows, description=f"model {info['uri']}")
    summary = {"model": info["uri"], "done": done, "failed": failed}
    if failed:
        names = ", ".join(Path(f["input"]).name for f in failed)
        raise BatchFailed(f"{len(failed)} of {len(failed) + len(done)} inputs failed ({names}); "
                          f"the other {len(done)} were written to {out_dir}")  # fmt: skip
    return summary
