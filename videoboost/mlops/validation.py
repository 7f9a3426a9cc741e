"""Great Expectations suite for a built dataset (the only module that imports GX).

The suite runs over :func:`videoboost.data.checks.measure`'s rows (one per whole frame)
through a GX checkpoint; the report people open (``DOCS``) is a self-contained page rendered
from its result by :mod:`videoboost.data.report` (GX's own Data Docs, beside it in ``GX_SITE``,
need CDNs online). :func:`build_validated_dataset` is the dataset builder with this suite as
its gate: what the CLI, the flows and the benchmarks call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from videoboost.config import DatasetConfig
from videoboost.data.checks import (
    GX_SITE,
    GX_SITE_CONFIG,
    MAX_VARIANT_MISFIT,
    MAX_WINDOW_MISFIT,
    MISFIT_MIN_SIDE,
    SUITE,
    Failure,
    ValidationResult,
    measure,
    variant_misfit,
    window_misfit,
)
from videoboost.data.shards import DOCS, load_config, load_manifest

__all__ = [
    "DOCS",
    "GX_SITE",
    "MAX_VARIANT_MISFIT",
    "MAX_WINDOW_MISFIT",
    "MISFIT_MIN_SIDE",
    "ValidationResult",
    "build_suite",
    "build_validated_dataset",
    "measure",
    "validate_dataset",
    "variant_misfit",
    "window_misfit",
]


def build_validated_dataset(
    sources: Sequence[str | Path],
    out: str | Path,
    cfg: DatasetConfig | None = None,
    *,
    progress: bool = True,
):
    """:func:`videoboost.data.dataset.build_dataset` gated by :func:`validate_dataset`: a
    failing dataset is not published (``ValidationFailed``, its report kept beside ``out``)."""
    from videoboost.data.dataset import build_dataset

    return build_dataset(sources, out, cfg, validator=validate_dataset, progress=progress)


def build_suite(cfg: DatasetConfig):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    s = cfg.scale
    # Alignment tolerance: plain downscales stay within a few grey levels; blur, noise and
    # JPEG add their own difference, so the bound grows with them.
    d = cfg.degrade
    align_max = 12.0 + 2.0 * d.noise_sigma + (8.0 if d.jpeg_quality else 0.0) + 4.0 * d.blur_sigma
    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=2 * cfg.min_per_split),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=["train", "val"]),
        gxe.ExpectColumnValuesToBeBetween(column="split_count", min_value=cfg.min_per_split),
        gxe.ExpectColumnValuesToBeBetween(column="m_lr_h", min_value=cfg.min_lr_side),
        gxe.ExpectColumnValuesToBeBetween(column="m_lr_w", min_value=cfg.min_lr_side),
        # The manifest's shapes are what the shards hold.
        *(
            gxe.ExpectColumnPairValuesToBeEqual(column_A=f"m_{side}", column_B=side)
            for side in ("lr_h", "lr_w", "hr_h", "hr_w")
        ),
        gxe.ExpectColumnValuesToBeInSet(column="m_dtype", value_set=["uint8/uint8"]),
        gxe.ExpectColumnValuesToBeInSet(column="ratio_h", value_set=[float(s)]),
        gxe.ExpectColumnValuesToBeInSet(column="ratio_w", value_set=[float(s)]),
        gxe.ExpectColumnValuesToBeInSet(column="scale", value_set=[s]),
        gxe.ExpectColumnValuesToBeBetween(column="m_hr_std", min_value=cfg.min_frame_std),
        gxe.ExpectColumnValuesToBeBetween(
            column="m_hr_mean", min_value=2.0, max_value=253.0, mostly=0.95
        ),
        gxe.ExpectColumnMeanToBeBetween(column="m_hr_mean", min_value=16.0, max_value=240.0),
        gxe.ExpectColumnValuesToBeUnique(column="content_hash"),
        gxe.ExpectColumnValuesToBeInSet(column="leaked", value_set=[False]),
        gxe.ExpectColumnValuesToBeInSet(column="m_hash_ok", value_set=[True]),
        gxe.ExpectColumnValuesToBeBetween(column="align_mad", max_value=align_max, mostly=0.99),
    ]
    if d.profile == "real":
        # Every frame carries its k codec-damaged LR variants, the manifest says so, and each
        # is aligned with its HR frame: a shifted variant would teach the model to shift.
        k = d.real.variants
        expectations += [
            gxe.ExpectColumnValuesToBeInSet(column="m_variants", value_set=[k]),
            gxe.ExpectColumnPairValuesToBeEqual(column_A="m_variants", column_B="variants"),
            gxe.ExpectColumnValuesToBeInSet(column="variant_shape_ok", value_set=[True]),
            # mostly: a misaligning builder moves every frame; one odd frame (content that
            # repeats at a pixel's step) may measure high and is no such bug.
            gxe.ExpectColumnValuesToBeBetween(
                column="variant_misfit", max_value=MAX_VARIANT_MISFIT, mostly=0.98
            ),
            gxe.ExpectColumnValuesToBeInSet(column="variant_distinct", value_set=[True]),
        ]
    if cfg.window:
        # Every frame carries its window (the clean LR's and each variant's neighbours), the
        # neighbours align onto their centre, sit in time order around it, and none comes from
        # the other split's part of a clip.
        expectations += [
            gxe.ExpectColumnValuesToBeInSet(column="m_window", value_set=[cfg.window]),
            gxe.ExpectColumnValuesToBeInSet(column="window_shape_ok", value_set=[True]),
            gxe.ExpectColumnValuesToBeBetween(
                column="window_misfit", max_value=MAX_WINDOW_MISFIT, mostly=0.95
            ),
            gxe.ExpectColumnValuesToBeInSet(column="window_order_ok", value_set=[True]),
            gxe.ExpectColumnValuesToBeInSet(column="window_leak", value_set=[False]),
        ]
    suite = gx.ExpectationSuite(name=SUITE)
    for e in expectations:
        suite.add_expectation(e)
    return suite


def _detail(result) -> str:
    r = result.result or {}
    parts = []
    if r.get("element_count"):
        parts.append(
            f"{r['unexpected_count']} of {r.get('element_count', '?')} rows unexpected "
            f"({r.get('unexpected_percent', 0):.1f}%)"
        )
    if r.get("partial_unexpected_list"):
        parts.append(f"e.g. {r['partial_unexpected_list'][:3]}")
    if "observed_value" in r:
        parts.append(f"observed {r['observed_value']}")
    kwargs = {
        k: v
        for k, v in result.expectation_config.kwargs.items()
        if k in ("min_value", "max_value", "value_set", "mostly")
    }
    if kwargs:
        parts.append(f"expected {kwargs}")
    return "; ".join(parts) or "failed"


def validate_dataset(root: str | Path, cfg: DatasetConfig | None = None) -> ValidationResult:
    """Run the suite through a GX checkpoint; write Data Docs and ``validation.json``."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from videoboost.data.report import write_report
    from videoboost.data.shards import load_info

    root = Path(root)
    cfg = cfg or load_config(root)
    manifest = load_manifest(root)
    df = measure(root, manifest, cfg)

    context = gx.get_context(mode="file", project_root_dir=str(root))
    # GX's per-metric progress bars would drown our own output.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.update_data_docs_site("local_site", GX_SITE_CONFIG)
    source = context.data_sources.add_or_update_pandas(name="videoboost")
    asset = source.add_dataframe_asset(name="frames")
    batch_def = asset.add_batch_definition_whole_dataframe("all")
    suite = context.suites.add_or_update(build_suite(cfg))
    vdef = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name="frames_vs_suite", data=batch_def, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name="dataset_checkpoint",
            validation_definitions=[vdef],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs")],
            result_format={"result_format": "SUMMARY"},
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": df})
    results = [r for vr in run.run_results.values() for r in vr.results]
    failures = [
        Failure(
            r.expectation_config.type,
            r.expectation_config.kwargs.get("column"),
            _detail(r),
        )
        for r in results
        if not r.success
    ]
    info = load_info(root)
    docs = write_report(
        root / DOCS,
        [r.to_json_dict() for r in results],
        success=bool(run.success),
        version=info.version,
        sources=[s.path for s in info.sources if not s.skipped],
        pairs=manifest["split"].value_counts().sort_index().to_dict(),
        rows=len(df),
        suite=SUITE,
        gx_docs="../gx_site/index.html",
    )
    result = ValidationResult(
        success=bool(run.success), evaluated=len(results), failures=failures, docs=docs
    )
    (root / "validation.json").write_text(json.dumps(result.summary(), indent=2))
    return result
