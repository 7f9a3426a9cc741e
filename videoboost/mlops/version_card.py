"""The Markdown description of a registered model version: what the MLflow UI shows on its page.

Plain Python (no MLflow here): :mod:`videoboost.mlops.tracking` writes the first card at
registration, :mod:`videoboost.mlops.registry` rewrites its sections as decisions are made. The card
is made of ``### `` sections in a fixed order; each writer replaces the sections it knows and
appends one dated line to the history, so a later decision never erases an earlier one.

Aliases are not restated as current facts here (the version page shows the real ones above the
description); the card states decisions and status changes, each with its UTC time, so nothing
in it can silently contradict the registry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from videoboost.evaluation.benchmark import track_key, tracks_of

# MLflow 3.17's UI opens in its GenAI view unless told otherwise; the experiment's
# ``mlflow.experimentKind`` tag does not switch a fresh browser, this URL parameter does. Every
# link to an MLflow page that VideoBoost writes ends with it.
ML_VIEW = "?workflowType=machine_learning"

SECTIONS = ("Status", "Decision", "Benchmark", "Training", "Lineage", "History")
MAX_CHARS = 4800  # MLflow's model_versions.description is VARCHAR(5000) (PostgreSQL enforces it)
HISTORY_KEEP = 12  # newest history lines kept when the card would grow past MAX_CHARS

# (key, header, digits, better): the benchmark table's columns.
_COLUMNS = (
    ("psnr", "PSNR Y (dB)", 2, "higher"),
    ("ssim", "SSIM Y", 4, "higher"),
    ("flicker", "flicker", 3, "lower"),
    ("fps_720p", "fps (720p out)", 1, "higher"),
)


def pretty_time(iso: str) -> str:
    """``2026-12-01T02:40:00Z`` -> ``2026-12-01 02:40 UTC`` (anything else unchanged)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d)?Z", iso or "")
    return f"{m[1]} {m[2]} UTC" if m else iso


def parse(text: str | None) -> dict[str, str]:
    """``{section title: body}``; text before the first section is under ``""``."""
    sections: dict[str, str] = {}
    title = ""
    lines: list[str] = []
    for line in (text or "").splitlines():
        m = re.fullmatch(r"### (.+)", line.strip())
        if m:
            sections[title] = "\n".join(lines).strip()
            title, lines = m[1].strip(), []
        else:
            lines.append(line)
    sections[title] = "\n".join(lines).strip()
    return {k: v for k, v in sections.items() if v or k}


def _join(sections: Mapping[str, str]) -> str:
    order = [s for s in SECTIONS if sections.get(s)]
    order += [s for s in sections if s and s not in SECTIONS and sections[s]]
    parts = [sections[""]] if sections.get("") else []
    parts += [f"### {s}\n\n{sections[s]}" for s in order]
    return "\n\n".join(parts) + "\n"


def render(sections: Mapping[str, str]) -> str:
    """The card text: the intro, then the known sections in order, then any others.

    Past :data:`MAX_CHARS` the oldest history lines go first, then the end is cut.
    """
    text = _join(sections)
    history = sections.get("History", "").splitlines()
    if len(text) > MAX_CHARS and len(history) > HISTORY_KEEP:
        kept = ["- (older entries dropped)", *history[-HISTORY_KEEP:]]
        text = _join({**sections, "History": "\n".join(kept)})
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 2] + "…\n"


def update(text: str | None, *, history: str | None = None, time: str = "", **replace: str) -> str:
    """``text`` with the sections named in ``replace`` rewritten and a history line added.

    Args:
        text: the current description (None or "" for a version without one).
        history: one line for the history (``time`` is put in front of it).
        time: ISO UTC time of the change.
        replace: ``Status=...``, ``Decision=...``, ``Benchmark=...`` (section bodies).
    """
    sections = parse(text)
    sections.update({k: v for k, v in replace.items() if v is not None})
    if history:
        past = sections.get("History", "")
        line = f"- {pretty_time(time)}: {history}" if time else f"- {history}"
        sections["History"] = f"{past}\n{line}".strip()
    return render(sections)


def run_link(run_id: str, experiment_id: str | None, name: str | None = None) -> str:
    """A link to the run's page that works inside the MLflow UI (a relative ``#/`` route,
    whatever host or store serves the UI)."""
    label = f"`{name}`" if name else f"`{run_id}`"
    if not experiment_id:
        return label
    page = f"#/experiments/{experiment_id}/runs/{run_id}{ML_VIEW}"
    return f"[{label.strip('`')}]({page}) (`{run_id}`)"


def registration_card(
    *,
    version: str,
    tier: str,
    scale: int,
    time: str,
    run_id: str,
    experiment_id: str | None,
    run_name: str | None,
    dataset_version: str,
    dataset_path: str = "",
    profile: str = "",
    parent: Mapping[str, str] | None = None,
    final: Mapping[str, float] | None = None,
    git_commit: str = "",
) -> str:
    """The first card of a new version: lineage, training scores, "not evaluated yet"."""
    learned = {
        "real": " It learned from codec-damaged input (the `real` profile: H.264, JPEG, noise, "
        "blur): use it for footage from files, streams and phones.",
        "clean": " It learned from a clean shrink only (the `clean` profile): use it for "
        "uncompressed or high-bitrate input.",
    }.get(profile, "")
    intro = (
        f"**{tier} ×{scale} generator**, version {version}, trained on dataset "
        f"`{dataset_version}`. Registered {pretty_time(time)}.{learned}"
    )
    parent = parent or {}
    if parent.get("parent_model_uri"):
        origin = f"warm start from `{parent['parent_model_uri']}`" + (
            f" (version {parent['parent_version']})" if parent.get("parent_version") else ""
        )
    else:
        origin = "cold start (no parent model)"
    lineage = [
        f"- run: {run_link(run_id, experiment_id, run_name)}",
        f"- dataset: `{dataset_version}`"
        + (f" at `{dataset_path}`" if dataset_path else "")
        + (f", degradation profile `{profile}`" if profile else ""),
        f"- parent: {origin}",
    ]
    if git_commit:
        lineage.append(f"- code: git `{git_commit[:12]}`")
    lineage.append("- full record: `evaluation.json` in the run's artifacts")
    sections = {
        "": intro,
        "Status": f"{pretty_time(time)}: registered, not evaluated yet. Promote it with "
        f"`videoboost promote {version}`.",
        "Training": training_table(final or {}),
        "Lineage": "\n".join(lineage),
    }
    return update(render(sections), history=f"registered from run `{run_id}`", time=time)


def training_table(final: Mapping[str, float]) -> str:
    """The training run's whole-frame validation scores beside bicubic on the same frames."""
    if "val_psnr" not in final:
        return ""
    rows = [
        "Validation frames of the dataset (seen in training's epochs, not held out):",
        "",
        "| | PSNR Y (dB) | SSIM Y |",
        "|---|---|---|",
        f"| this version | {final['val_psnr']:.2f} | {final.get('val_ssim', float('nan')):.4f} |",
        f"| bicubic | {final.get('val_psnr_bicubic', float('nan')):.2f} | "
        f"{final.get('val_ssim_bicubic', float('nan')):.4f} |",
    ]
    if "val_psnr_gain" in final:
        rows.append(f"| gain | {final['val_psnr_gain']:+.2f} | |")
    return "\n".join(rows)


def _cell(value: Any, digits: int, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def benchmark_table(
    candidate: Mapping[str, float],
    *,
    version: str,
    benchmark: Mapping[str, Any] | None = None,
    time: str = "",
    champion: Mapping[str, float] | None = None,
    champion_version: str | None = None,
) -> str:
    """This version vs bicubic (and vs the champion it was compared with) on the held-out
    benchmark: PSNR, SSIM, flicker (lower is better), throughput."""
    benchmark = benchmark or {}
    head = "Held-out benchmark"
    if benchmark.get("version"):
        head += f" `{benchmark['version']}`"
    if benchmark.get("frames"):
        names = ", ".join(s.get("name", "?") for s in benchmark.get("sources", []))
        head += f" ({benchmark['frames']} frames" + (f" of {names}" if names else "") + ")"
    if time:
        head += f", evaluated {pretty_time(time)}"
    head += ". Flicker: lower is better."

    def row(label: str, metrics: Mapping[str, float] | None, suffix: str = "") -> str:
        m = metrics or {}
        cells = [_cell(m.get(f"bench_{key}{suffix}"), d) for key, _, d, _ in _COLUMNS]
        return f"| {label} | " + " | ".join(cells) + " |"

    def delta(label: str, other: Mapping[str, float] | None, suffix: str = "") -> str:
        cells = []
        for key, _, d, _ in _COLUMNS:
            a, b = candidate.get(f"bench_{key}"), (other or {}).get(f"bench_{key}{suffix}")
            cells.append(_cell(a - b if a is not None and b is not None else None, d, True))
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        head,
        "",
        "| | " + " | ".join(h for _, h, _, _ in _COLUMNS) + " |",
        "|---" * (len(_COLUMNS) + 1) + "|",
        row(f"**this version (v{version})**", candidate),
        row("bicubic", candidate, "_bicubic"),
    ]
    if champion:
        lines.append(row(f"champion v{champion_version}", champion))
    lines.append(delta("**vs bicubic**", candidate, "_bicubic"))
    if champion:
        lines.append(delta(f"**vs champion v{champion_version}**", champion))
    tracks = tracks_of(candidate)
    if len(tracks) > 1:
        lines += ["", track_table(candidate, champion, champion_version, version)]
    return "\n".join(lines)


def track_label(track: str) -> str:
    """``h264_crf30`` -> ``H.264 CRF 30``, ``jpeg_q50`` -> ``JPEG q50`` (words wrap in the UI's
    narrow table cells; track names in backticks ran together)."""
    import re

    m = re.fullmatch(r"h264_crf(\d+)|jpeg_q(\d+)", track)
    if m and m[1]:
        return f"H.264 CRF {m[1]}"
    if m and m[2]:
        return f"JPEG q{m[2]}"
    if track == "video":
        return "video clips (CRF 23)"
    return track


def track_table(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None = None,
    champion_version: str | None = None,
    version: str = "?",
) -> str:
    """PSNR Y per benchmark track (one column each, then the mean): this version, bicubic of
    the same input, the champion, and the differences."""
    tracks = tracks_of(candidate)

    def cells(values: list[float | None], signed: bool = False) -> str:
        shown = [*values, (sum(values) / len(values)) if None not in values else None]
        return " | ".join(_cell(v, 2, signed) for v in shown)

    def psnr(m: Mapping[str, float] | None, base: str = "bench_psnr") -> list[float | None]:
        return [(m or {}).get(track_key(base, t)) for t in tracks]

    def diff(a: list, b: list) -> list[float | None]:
        return [
            x - y if x is not None and y is not None else None for x, y in zip(a, b, strict=True)
        ]

    mine, bic = psnr(candidate), psnr(candidate, "bench_psnr_bicubic")
    lines = [
        "PSNR Y (dB) per input kind (each coded track: the clean LR coded, scored against "
        "bicubic of the same coded input):",
        "",
        "| | " + " | ".join(track_label(t) for t in tracks) + " | mean |",
        "|---" * (len(tracks) + 2) + "|",
        f"| **this version (v{version})** | {cells(mine)} |",
        f"| bicubic | {cells(bic)} |",
    ]
    if champion:
        lines.append(f"| champion v{champion_version} | {cells(psnr(champion))} |")
    lines.append(f"| **vs bicubic** | {cells(diff(mine, bic), True)} |")
    if champion:
        lines.append(
            f"| **vs champion v{champion_version}** | {cells(diff(mine, psnr(champion)), True)} |"
        )
    return "\n".join(lines)
