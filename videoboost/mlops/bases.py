"""Shipped base generators at the MLflow edge: where a run starts, and the base as a version.

:func:`resolve_init` turns ``--init base|champion|none|URI`` into the generator a run starts
from. The default, ``champion``, falls back to the shipped base of the run's tier and scale
while the registry has no champion of them, then to a cold start; each step says why.

:func:`register_base` registers a shipped base (:mod:`videoboost.training.base`) as a version of
``videoboost-generator`` once: tagged ``base``, its model card as the version's description, its
per-track benchmark scores as the run's metrics. A second call finds it by the file's SHA-256
and registers nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from videoboost.errors import ModelNotFound, VideoBoostError

INIT_CHOICES = ("base", "champion", "none")


def _fits(generator, gen_cfg) -> bool:
    """Whether ``generator``'s weights fit a generator of ``gen_cfg`` (tier, width, scale)."""
    from models.networks import build_generator
    from videoboost.training.train import warm_start

    try:  # the check training makes, on a throwaway generator
        warm_start(build_generator(gen_cfg), generator)
    except VideoBoostError:
        return False
    return True


def _base_for(gen_cfg) -> Path | None:
    from videoboost.training.base import base_dir, base_path

    path = base_path(gen_cfg.tier, gen_cfg.scale, base_dir())
    return path if path.is_file() and path.with_suffix(".json").is_file() else None


def resolve_init(init: str | None, gen_cfg) -> tuple[str | None, str]:
    """The model a run of ``gen_cfg`` starts from, and the reason in words.

    Args:
        init: ``"champion"`` (falls back to the base, then to a cold start), ``"base"`` (the
            shipped base of this tier and scale; an error when there is none), ``"none"`` or
            None (a cold start), or a model URI/path (as given).

    Returns:
        ``(uri_or_path or None, reason)``.

    Raises:
        ModelNotFound: ``init="base"`` and no base of this tier and scale is shipped.
        VideoBoostError: that base does not fit the generator (another width or depth).
    """
    from videoboost.mlops.tracking import load_generator, load_init

    tier, scale = gen_cfg.tier, gen_cfg.scale
    if init in (None, "none"):
        return None, "cold start (--init none)"
    if init == "base":
        path = _base_for(gen_cfg)
        if path is None:
            from videoboost.training.base import base_dir, base_path

            raise ModelNotFound(
                f"--init base: no {tier} x{scale} base is shipped "
                f"({base_path(tier, scale, base_dir())} with its .json card); use --init none "
                "or champion, or export one with `videoboost base export CHECKPOINT_FILE`"
            )
        generator, _ = load_generator(str(path))
        if not _fits(generator, gen_cfg):
            raise VideoBoostError(f"--init base: {path} does not fit a {tier} generator here")
        return str(path), f"the shipped {path.name}"
    if init != "champion":
        return init, init
    try:
        generator, info = load_init("champion", scale)
        if _fits(generator, gen_cfg):
            return "champion", f"the champion (version {info.get('version')})"
        why = f"the champion is not a {tier} x{scale} generator"
    except (ModelNotFound, VideoBoostError) as exc:
        why = f"no champion ({str(exc).split(';')[0]})"
    path = _base_for(gen_cfg)
    if path is None:
        return None, f"cold start: {why}, and no {tier} x{scale} base is shipped"
    generator, _ = load_generator(str(path))
    if _fits(generator, gen_cfg):
        return str(path), f"the shipped {path.name}: {why}"
    return None, f"cold start: {why}, and the shipped {path.name} does not fit this generator"


def base_lineage(uri: str | None) -> dict[str, str]:
    """Tags naming the shipped base a run starts from (empty when it starts elsewhere)."""
    from videoboost.training.base import file_sha256, read_card

    if not uri or not uri.endswith(".keras") or not Path(uri).with_suffix(".json").is_file():
        return {}
    card = read_card(Path(uri))
    if card.get("sha256") != file_sha256(Path(uri)):
        return {}
    return {"parent_base": Path(uri).stem, "parent_base_card": Path(uri).with_suffix(".json").name}


def find_base_version(sha256: str) -> str | None:
    """The registered version of the base file with this SHA-256, if any."""
    from videoboost.mlops.tracking import MODEL_NAME, _mlflow, with_store_retries

    client = _mlflow().MlflowClient()
    versions = with_store_retries(
        lambda: client.search_model_versions(f"name='{MODEL_NAME}'"), "listing versions"
    )
    for mv in versions:
        if (mv.tags or {}).get("base_sha256") == sha256:
            return str(mv.version)
    return None


def register_base(tier: str, scale: int) -> dict[str, Any] | None:
    """Register the shipped base of ``tier`` and ``scale`` once; None when none is shipped.

    Returns ``{"version", "registered" (False when it was already there), "file", "run_id"}``.
    """
    import numpy as np

    from videoboost.mlops.tracking import (
        MODEL_NAME,
        _mlflow,
        git_commit,
        load_generator,
        log_generator,
        register,
        setup,
        with_store_retries,
    )
    from videoboost.training.base import base_dir, base_path, file_sha256, read_card, render_card

    path = base_path(tier, scale, base_dir())
    if not (path.is_file() and path.with_suffix(".json").is_file()):
        return None
    sha = file_sha256(path)
    setup()
    found = find_base_version(sha)
    if found:
        return {"version": found, "registered": False, "file": str(path), "run_id": None}
    card = read_card(path)
    if card.get("sha256") != sha:
        raise VideoBoostError(
            f"{path} differs from its card {path.with_suffix('.json').name} (SHA-256); "
            "export it again with `videoboost base export`"
        )
    generator, _ = load_generator(str(path))
    mlflow = _mlflow()
    experiment_id = setup()
    with with_store_retries(
        lambda: mlflow.start_run(experiment_id=experiment_id, run_name=f"base-{path.stem}"),
        "starting the run",
    ) as run:
        t = card["training"]
        mlflow.log_params({"tier": tier, "scale": scale, "base": path.stem,
                           "steps": t["steps"], "batch_size": t["batch_size"],
                           "crop": t["crop"], "hours": round(t["hours"], 3)})  # fmt: skip
        mlflow.set_tags({"base": path.stem, "base_sha256": sha, "git_commit": git_commit(),
                         "tier": tier, "base_card": path.with_suffix(".json").name})  # fmt: skip
        metrics = {}
        for track, s in card["benchmark"]["tracks"].items():
            suffix = "" if track == "clean" else f"_{track}"
            metrics.update({f"{k}{suffix}": v for k, v in s.items()})
        mlflow.log_metrics(metrics)
        mlflow.log_dict(card, "base_card.json")
        mlflow.log_text(render_card(card), "base_card.md")
        example = np.zeros((1, 16, 16, 3), np.float32)
        meta = {"scale": scale, "tier": tier, "dataset_version": card["dataset"].get("version", "")}
        info = log_generator(generator, meta, example)
        lineage = (
            f"\n\n**Lineage:** the shipped base `models/base/{path.name}` (card "
            f"`{path.with_suffix('.json').name}`, SHA-256 `{sha[:16]}`), registered as is: no "
            "training in this run."
        )
        mv = register(
            info.model_uri,
            {**meta, "base": path.stem, "base_sha256": sha},
            description=render_card(card) + lineage,
        )
        mlflow.set_tag("registered_version", str(mv.version))
    print(f"registered the shipped base {path.name} as {MODEL_NAME} version {mv.version}")
    return {"version": str(mv.version), "registered": True, "file": str(path),
            "run_id": run.info.run_id}  # fmt: skip
