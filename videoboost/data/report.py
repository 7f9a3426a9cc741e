"""A dataset's validation report as one self-contained HTML page (opens offline, anonymously).

Great Expectations 1.24 Data Docs load Bootstrap, jQuery and Vega from CDNs and their logo
from GX's cloud (with the data context id in the URL); offline their index page is empty and
unstyled, and no site setting changes that (the URLs are hard-coded in GX's templates). This
page is rendered from the same validation result: inline CSS, no scripts, no external host,
and a Content-Security-Policy that forbids the browser to fetch anything.

Plain Python (no GX import): results come in as GX's JSON form of each expectation result
(``ExpectationValidationResult.to_json_dict()``), so the renderer is testable on plain dicts.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The browser fetches nothing: no scripts, no remote styles, fonts, images or frames.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"

_HIDDEN_KWARGS = {"column", "batch_id"}
_KWARG_ORDER = ("min_value", "max_value", "value_set", "mostly")  # then the rest, by name
_MAX_VALUE_CHARS = 300

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
  color:#1d2330;background:#f5f6f8}
main{max-width:1320px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.banner{border-radius:8px;padding:18px 22px;color:#fff;display:flex;align-items:baseline;
  gap:20px;flex-wrap:wrap}
.banner b{font-size:30px;letter-spacing:.06em}
.pass{background:#1e7b45}.fail{background:#b3261e}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:18px 0;
  background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 18px}
.meta dt{color:#5b6372}.meta dd{margin:0;font-family:ui-monospace,Menlo,Consolas,monospace;
  overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e7}
th,td{text-align:left;vertical-align:top;padding:7px 10px;border-bottom:1px solid #e6e9ee}
th{background:#eef0f4;font-size:13px;color:#3b4252}
td code,li code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;
  overflow-wrap:anywhere}
tr.failed td{background:#fdf0ef}
.ok{color:#1e7b45;font-weight:700}.bad{color:#b3261e;font-weight:700}
ul.failed{background:#fff;border:1px solid #e8b4b0;border-radius:8px;padding:12px 32px}
ul.failed li{margin:4px 0}
.detail div{margin:1px 0}.muted{color:#5b6372}
footer{margin-top:24px;color:#5b6372;font-size:13px}
"""


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (GX leaves some in its results) as Python values."""
    return value.tolist() if hasattr(value, "tolist") else value


def _text(value: Any) -> str:
    """A value as short readable text (JSON-like), escaped for HTML."""
    value = _plain(value)
    if isinstance(value, float):
        out = f"{value:.6g}"
    elif isinstance(value, str):
        out = value
    else:
        try:
            out = json.dumps(value, default=str)
        except (TypeError, ValueError):
            out = str(value)
    if len(out) > _MAX_VALUE_CHARS:
        out = out[: _MAX_VALUE_CHARS - 1] + "…"
    return html.escape(out)


def _kwargs(config: Mapping[str, Any]) -> str:
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k not in _HIDDEN_KWARGS}
    order = {k: i for i, k in enumerate(_KWARG_ORDER)}
    kwargs = dict(sorted(kwargs.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    if not kwargs:
        return '<span class="muted">none</span>'
    return "<br>".join(f"<code>{html.escape(k)}={_text(v)}</code>" for k, v in kwargs.items())


def _observations(result: Mapping[str, Any]) -> list[str]:
    """What GX saw, as short HTML fragments: counts, observed value, examples, errors."""
    r = {k: _plain(v) for k, v in (result.get("result") or {}).items()}
    parts = []
    if r.get("element_count") is not None:
        pct = r.get("unexpected_percent")
        pct = (
            f" ({pct:.3g}%)" if isinstance(pct, (int, float)) and r.get("unexpected_count") else ""
        )
        parts.append(
            f"{_text(r.get('unexpected_count', 0))} of {_text(r['element_count'])} rows "
            f"unexpected{pct}"
        )
    elif r.get("unexpected_count") is not None:
        parts.append(f"{_text(r['unexpected_count'])} unexpected values")
    if r.get("missing_count"):
        missing = r.get("partial_missing_list")
        example = f" (<code>{_text(missing[:10])}</code>)" if missing else ""
        parts.append(f"{_text(r['missing_count'])} missing{example}")
    if r.get("observed_value") is not None:
        parts.append(f"observed <code>{_text(r['observed_value'])}</code>")
    if r.get("partial_unexpected_list"):
        parts.append(f"e.g. <code>{_text(r['partial_unexpected_list'][:10])}</code>")
    exc = result.get("exception_info") or {}
    if exc.get("raised_exception"):
        parts.append(f'<span class="bad">error: {_text(exc.get("exception_message"))}</span>')
    return parts


def _detail(result: Mapping[str, Any]) -> str:
    parts = _observations(result)
    return "".join(f"<div>{p}</div>" for p in parts) or '<span class="muted">no detail</span>'


def _name(result: Mapping[str, Any]) -> tuple[str, str | None]:
    config = result.get("expectation_config") or {}
    return str(config.get("type", "?")), (config.get("kwargs") or {}).get("column")


def render_report(
    results: Sequence[Mapping[str, Any]],
    *,
    success: bool,
    version: str,
    sources: Sequence[str] = (),
    pairs: Mapping[str, int] | None = None,
    rows: int | None = None,
    suite: str = "",
    gx_docs: str | None = None,
    created: str | None = None,
) -> str:
    """The report page as a string.

    Args:
        results: one dict per expectation, GX's JSON form of the result: ``success``,
            ``expectation_config`` (``type``, ``kwargs``), ``result`` (``observed_value``,
            ``unexpected_count``, ``partial_unexpected_list``, ...), ``exception_info``.
        success: the checkpoint's verdict (the banner).
        version: dataset version (content hash).
        sources: the footage the dataset was cut from (shown as text only).
        pairs: LR/HR frame pairs per split, e.g. ``{"train": 80, "val": 10}``.
        rows: rows the suite ran over (frames whose pixels were re-measured).
        suite: expectation suite name.
        gx_docs: link to Great Expectations' own Data Docs, relative to this page.
        created: timestamp shown; default now (UTC).
    """
    failed = [r for r in results if not r.get("success")]
    held = len(results) - len(failed)
    verdict, cls = ("PASSED", "pass") if success else ("FAILED", "fail")
    created = created or time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    meta = {
        "dataset version": version,
        "sources": ", ".join(str(s) for s in sources) or "?",
        "frames": ", ".join(f"{n} {split}" for split, n in (pairs or {}).items()) or "?",
        "rows checked": "?" if rows is None else str(rows),
        "expectations": f"{len(results)} evaluated, {held} hold, {len(failed)} failed",
        "suite": suite or "?",
        "validated": created,
    }
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{verdict}: dataset {html.escape(version)} validation</title>",
        f"<style>{_STYLE}</style></head><body><main>",
        f'<div class="banner {cls}"><b>{verdict}</b>'
        f"<span>{held} of {len(results)} expectations hold on dataset "
        f"<code>{html.escape(version)}</code></span></div>",
        '<dl class="meta">',
        *(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in meta.items()),
        "</dl>",
    ]
    if failed:
        out.append(f"<h2>Failed expectations ({len(failed)})</h2><ul class='failed'>")
        for r in failed:
            name, column = _name(r)
            col = f" on <code>{html.escape(column)}</code>" if column else ""
            seen = "; ".join(_observations(r)) or "failed"
            out.append(f"<li><code>{html.escape(name)}</code>{col}: {seen}</li>")
        out.append("</ul>")
    out += [
        f"<h2>All expectations ({len(results)})</h2>",
        "<table><thead><tr><th>#</th><th>result</th><th>expectation</th><th>column</th>"
        "<th>expected (kwargs)</th><th>observed</th></tr></thead><tbody>",
    ]
    for i, r in enumerate(results, 1):
        name, column = _name(r)
        ok = bool(r.get("success"))
        status = '<span class="ok">pass</span>' if ok else '<span class="bad">FAIL</span>'
        out.append(
            f'<tr class="{"passed" if ok else "failed"}"><td>{i}</td><td>{status}</td>'
            f"<td><code>{html.escape(name)}</code></td>"
            f"<td>{f'<code>{html.escape(column)}</code>' if column else '—'}</td>"
            f"<td>{_kwargs(r.get('expectation_config') or {})}</td>"
            f'<td class="detail">{_detail(r)}</td></tr>'
        )
    out.append("</tbody></table>")
    footer = "Written by VideoBoost from the Great Expectations checkpoint result."
    if gx_docs:
        footer += (
            f' Great Expectations\' own Data Docs: <a href="{html.escape(gx_docs)}">'
            f"{html.escape(gx_docs)}</a> (they load scripts and styles from CDNs: online only)."
        )
    out.append(f"<footer>{footer}</footer></main></body></html>")
    return "\n".join(out) + "\n"


def write_report(path: str | os.PathLike, results: Sequence[Mapping[str, Any]], **meta) -> Path:
    """Render :func:`render_report` to ``path`` (temp file, then rename); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(results, **meta), encoding="utf-8")
    tmp.replace(path)
    return path
