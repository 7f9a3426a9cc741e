"""Links for the flows' Prefect artifacts: MLflow pages that a browser opens, or a plain note.

The Prefect UI opens ``http(s)`` links only (``file://`` does nothing there). An MLflow tracking
server gives the run, the model version and any run artifact a page; a SQLite or file store
has no address until someone runs ``mlflow ui`` on it, and then the artifact says so instead of
showing a link that leads nowhere.
"""

from typing import Any

from prefect.artifacts import create_link_artifact

# Where videoboost.mlops.tracking.log_dataset puts the validation report (videoboost.data.report's
# self-contained page) in the training run's artifacts.
REPORT_ARTIFACT = "dataset/data_docs/local_site/index.html"


def mlflow_pages(
    run_id: str | None, experiment_id: str | None, version: str | None = None
) -> dict[str, str | None]:
    """``{what: url or None}`` for the run, its validation report, its comparison images and
    the model version (None everywhere with a local store)."""
    from videoboost.mlops.tracking import artifact_url, run_url, version_url

    if not run_id or not experiment_id:
        return {"run": None, "report": None, "images": None, "version": None}
    return {
        "run": run_url(run_id, experiment_id),
        "report": artifact_url(run_id, experiment_id, REPORT_ARTIFACT),
        "images": artifact_url(run_id, experiment_id, "samples"),
        "version": version_url(version) if version else None,
    }


def md_link(text: str, url: str | None, fallback: str = "") -> str:
    """``[text](url)``, or ``text`` and ``fallback`` (what to open instead) without a URL."""
    if url:
        return f"[{text}]({url})"
    return f"{text} {fallback}".strip()


def no_server_note() -> str:
    """One Markdown paragraph: why there are no links, and how to look anyway."""
    from videoboost.mlops.tracking import safe_uri, ui_base, ui_command
    from videoboost.state import tracking_uri

    if ui_base():
        return ""
    return (
        f"*No MLflow links: the store is `{safe_uri(tracking_uri())}`, not a tracking server, "
        f"so its pages have no web address. To browse it run {ui_command()} and open "
        "http://127.0.0.1:5000 (or set `MLFLOW_TRACKING_URI` to an `http://` server before "
        "the flow runs to get links here).*"
    )


def link_artifacts(pages: dict[str, Any], prefix: str = "mlflow") -> None:
    """One Prefect link artifact per page that has a URL (none with a local store)."""
    titles = {
        "run": "MLflow run",
        "report": "Dataset validation report (in MLflow)",
        "images": "Comparison images (MLflow run artifacts)",
        "version": "MLflow model version",
    }
    for key, url in pages.items():
        if url:
            create_link_artifact(key=f"{prefix}-{key}", link=url, link_text=titles[key])
