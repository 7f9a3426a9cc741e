"""Batch upscaling: a folder or list of videos (and images) -> upscaled outputs.

One task per file, submitted together so they run concurrently; a file that fails is reported
(task failed, listed in the artifact) while the others finish.

By default the tasks are threads of the flow's process, sharing the model it loaded. With
``dask`` (or ``VIDEOBOOST_DASK_*`` in the environment) the same work runs in a subflow on a
Dask cluster through ``prefect-dask``: a LocalCluster started for the run, or the scheduler
at ``dask.address``. Workers load the model themselves (:mod:`videoboost.batch.fanout`), and a
video longer than ``dask.split_frames`` is cut at keyframes into parts that upscale on
different workers, then one task stitches them with the source audio.

No ``from __future__ import annotations``: Prefect validates parameters from these annotations.
"""

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from videoboost.config import DaskConfig, EngineConfig
from videoboost.errors import VideoBoostError
from videoboost.state import configure_environment

configure_environment()


class BatchFailed(VideoBoostError):
    """Some inputs of a batch failed; the others were written."""


def _where() -> str:
    """The Dask worker running this task, or "local" for the flow's own process."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


@task(cache_policy=NO_CACHE, task_run_name="upscale-{job.src.name}")
def upscale_file(job, model, engine: EngineConfig, height: int | None) -> dict[str, Any]:
    from videoboost.batch.fanout import upscaler_for
    from videoboost.batch.jobs import upscale_jobs
    from videoboost.mlops.tracking import load_generator

    logger = get_run_logger()
    # Loaded once per process (the flow's, or a worker's).
    upscaler = upscaler_for(model, engine, load_generator)
    (outcome,) = upscale_jobs([job], upscaler, model_id=model.identity, height=height,
                              progress=False, log=logger.info)  # fmt: skip
    if not outcome.ok:
        raise BatchFailed(f"{job.src}: {outcome.message}")
    return {"input": str(job.src), "output": str(job.dst), "result": outcome.message,
            "parts": 1, "workers": [_where()]}  # fmt: skip


@task(cache_policy=NO_CACHE, task_run_name="upscale-{job.src.name}-part-{part.index}")
def upscale_part(job, plan, part, model, engine: EngineConfig, height: int | None) -> dict:
    from videoboost.batch import fanout
    from videoboost.mlops.tracking import load_generator

    upscaler = fanout.upscaler_for(model, engine, load_generator)
    done = fanout.upscale_part(plan, part, upscaler, height=height)
    where = _where()
    get_run_logger().info(
        "%s part %d/%d: %d frames on %s, %s", job.src.name, part.index + 1, len(plan.parts),
        part.frames, where, "already done" if done["reused"] else f"{done['seconds']:.1f} s",
    )  # fmt: skip
    return {**done, "worker": where}


@task(cache_policy=NO_CACHE, task_run_name="stitch-{job.src.name}")
def stitch_video(job, plan, parts: list[dict]) -> dict[str, Any]:
    from videoboost.batch.fanout import stitch

    out = stitch(plan)
    workers = sorted({p["worker"] for p in parts})
    result = (
        f"{out['width']}x{out['height']}, {out['frames']} frames, {out['parts']} parts on "
        f"{len(workers)} worker(s), {sum(p['seconds'] for p in parts):.1f} s of part work"
    )
    if out["note"]:
        result += f"; {out['note']}"
    get_run_logger().info("%s -> %s (%s)", job.src, job.dst, result)
    return {"input": str(job.src), "output": str(job.dst), "result": result,
            "parts": out["parts"], "workers": workers}  # fmt: skip


def _failure(future, parts) -> str:
    """Why a video did not finish: its own error, or that of the first failed part."""
    for part in parts:
        if part.state.is_failed():
            return str(part.state.message)
    return str(future.state.message)


def _upscale_batch(
    inputs: list[str],
    out_dir: str,
    model: str | None,
    height: int | None,
    tile: int,
    batch: int,
    split_frames: int | None,
) -> dict[str, Any]:
    """The flow body, on whichever task runner the calling flow has."""
    from videoboost.batch.fanout import ModelRef, job_key, prepare_video, remember
    from videoboost.batch.jobs import plan_jobs
    from videoboost.inference.engine import Upscaler, infer_window, keras_predict
    from videoboost.mlops.tracking import MODEL_NAME, load_generator

    logger = get_run_logger()
    # Resolved once to a fixed version, so a promotion during the batch cannot mix two models.
    generator, info = load_generator(model)
    ref = ModelRef.from_info(info, MODEL_NAME)
    engine = EngineConfig(tile=tile, batch=batch)
    window = infer_window(generator)  # a video-tier model's k: parts decode k frames beyond
    upscaler = Upscaler(keras_predict(generator), ref.scale, engine, window=window)
    logger.info("model %s (x%s, %s)", ref.uri, ref.scale, upscaler.mode)
    # Tasks running in this process reuse this model; other processes load it from ``ref``.
    remember(ref, engine, upscaler)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    jobs, problems = plan_jobs(inputs, out_dir)
    failed = [{"input": str(p), "error": why} for p, why in problems]
    submitted = []
    for job in jobs:
        plan = None
        if split_frames and job.kind == "video":
            try:
                plan = prepare_video(job.src, job.dst, split_frames=split_frames,
                                     job_key=job_key(ref, engine, height),
                                     context=window)  # fmt: skip
            except (VideoBoostError, OSError) as exc:  # e.g. an output folder it cannot write
                failed.append({"input": str(job.src), "error": str(exc)})
                continue
        if plan is None:
            submitted.append((job, upscale_file.submit(job, ref, engine, height), []))
        else:
            logger.info("%s: %d frames in %d parts (cut at keyframes)", job.src.name,
                        plan.frames, len(plan.parts))  # fmt: skip
            parts = [upscale_part.submit(job, plan, p, ref, engine, height) for p in plan.parts]
            submitted.append((job, stitch_video.submit(job, plan, parts), parts))
    wait([future for _, future, _ in submitted])
    done = []
    for job, future, parts in submitted:
        if future.state.is_completed():
            done.append(future.result())
        else:
            failed.append({"input": str(job.src), "error": _failure(future, parts)})
    rows = [{"input": d["input"], "output": d["output"], "status": "ok"} for d in done]
    rows += [{"input": f["input"], "output": "", "status": f"FAILED: {f['error']}"} for f in failed]
    create_table_artifact(key="batch-upscale", table=rows, description=f"model {ref.uri}")
    summary = {"model": ref.uri, "done": done, "failed": failed}
    if failed:
        names = ", ".join(Path(f["input"]).name for f in failed)
        raise BatchFailed(f"{len(failed)} of {len(failed) + len(done)} inputs failed ({names}); "
                          f"the other {len(done)} were written to {out_dir}")  # fmt: skip
    return summary


def dask_task_runner(cfg: DaskConfig):
    """``prefect-dask``'s ``DaskTaskRunner`` for ``cfg``: the scheduler at ``cfg.address``, or
    a LocalCluster of ``cfg.workers`` processes started for the run."""
    from prefect_dask import DaskTaskRunner

    client_kwargs = {"timeout": cfg.timeout_s}
    if cfg.address:
        return DaskTaskRunner(address=cfg.address, client_kwargs=client_kwargs)
    cluster = {
        "n_workers": cfg.workers,
        "threads_per_worker": cfg.threads_per_worker,
        "processes": True,  # TF and the GIL: a worker per process is what runs in parallel
        "host": "127.0.0.1",  # a cluster for this run only: not reachable from other machines
        "dashboard_address": None,  # the dashboard needs bokeh, which is not installed
    }
    return DaskTaskRunner(cluster_kwargs=cluster, client_kwargs=client_kwargs)


def _connect(cfg: DaskConfig) -> int:
    """Connect the subflow's Dask client now, so a dead scheduler is one clear error."""
    from prefect.context import FlowRunContext

    from videoboost.batch.fanout import ClusterUnavailable

    where = f"the Dask scheduler at {cfg.address}" if cfg.address else "a local Dask cluster"
    try:
        client = FlowRunContext.get().task_runner.client
        client.wait_for_workers(1, timeout=cfg.timeout_s)
    except (OSError, TimeoutError) as exc:
        hint = (
            f"start it (`dask scheduler` and `dask worker {cfg.address}`) or change "
            "dask.address / VIDEOBOOST_DASK_ADDRESS"
            if cfg.address
            else "check the machine's free memory and ports"
        )
        raise ClusterUnavailable(f"cannot use {where}: {exc}; {hint}") from exc
    return len(client.scheduler_info(n_workers=-1)["workers"])


@flow(name="batch-upscale-dask")
def batch_upscale_dask(
    inputs: list[str],
    out_dir: str,
    model: str | None,
    height: int | None,
    tile: int,
    batch: int,
    dask: DaskConfig,
) -> dict[str, Any]:
    """``batch-upscale``'s work on Dask (called by it as a subflow with a DaskTaskRunner)."""
    workers = _connect(dask)
    get_run_logger().info("Dask: %d workers", workers)
    return _upscale_batch(inputs, out_dir, model, height, tile, batch, dask.split_frames)


@flow(name="batch-upscale")
def batch_upscale(
    inputs: list[str],
    out_dir: str = ".state/outputs",
    model: str | None = None,
    height: int | None = None,
    tile: int = 512,
    batch: int = 4,
    dask: DaskConfig | None = None,
) -> dict[str, Any]:
    """Upscale every video/image of ``inputs`` (files or folders) into ``out_dir``.

    Args:
        inputs: files or folders (a folder contributes its top-level images and videos).
        out_dir: output folder; outputs keep the input names (images as PNG, videos as MP4).
        model: registry URI or path; default the champion. Resolved once to a fixed version,
            so a promotion during the batch cannot mix two models in one batch.
        height: optional output height (aspect kept; beyond the model's scale is Lanczos).
        tile, batch: engine settings (memory stays bounded by the tile size).
        dask: run on Dask (see :class:`videoboost.config.DaskConfig`); None = the
            ``VIDEOBOOST_DASK_*`` variables if any is set, else threads of this process.
    """
    if dask is None:
        try:
            dask = DaskConfig.from_env()
        except ValueError as exc:
            raise VideoBoostError(str(exc)) from None
    if dask is None:
        return _upscale_batch(inputs, out_dir, model, height, tile, batch, split_frames=None)
    runner = dask_task_runner(dask)
    return batch_upscale_dask.with_options(task_runner=runner)(
        inputs, out_dir, model, height, tile, batch, dask
    )
