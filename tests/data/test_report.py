"""The validation report opens offline: no CDN scripts or styles, no remote logo, no host at all."""

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from media import write_clip
from tiny import training_dataset

from videoboost.data.dataset import load_manifest
from videoboost.data.report import render_report
from videoboost.errors import ValidationFailed
from videoboost.mlops.validation import DOCS, GX_SITE, build_validated_dataset, validate_dataset

# Every attribute through which HTML can make the browser fetch or navigate somewhere.
URL_ATTRS = {
    "src", "href", "srcset", "action", "formaction", "poster", "data", "background", "cite",
    "longdesc", "manifest", "ping", "xlink:href", "codebase", "archive", "icon",
}  # fmt: skip
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]*)|@import\s+['\"]([^'\"]+)", re.I)


class References(HTMLParser):
    """Collects every URL a page references: attributes, inline styles, <style> sheets."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name in URL_ATTRS:
                self.refs += [part.split()[0] for part in value.split(",") if part.strip()]
            elif name == "style":
                self._css(value)
            elif name == "content" and "url=" in value.lower():  # <meta http-equiv=refresh>
                self.refs.append(value.lower().split("url=", 1)[1])

    def handle_endtag(self, tag):
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data):
        if self._in_style:
            self._css(data)

    def _css(self, text):
        self.refs += [a or b for a, b in CSS_URL.findall(text)]


def references(page: Path) -> References:
    parser = References()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def assert_offline(page: Path) -> None:
    """Only same-file or relative references, each to a file that exists; no scripts."""
    found = references(page)
    assert "script" not in found.tags and "link" not in found.tags
    for ref in found.refs:
        parts = urlsplit(ref.strip())
        assert not parts.scheme and not parts.netloc and not ref.strip().startswith("//"), ref
        if parts.path:
            assert (page.parent / parts.path).is_file(), f"{ref} does not resolve from {page}"


@pytest.fixture(scope="module")
def passing(tmp_path_factory) -> Path:
    return training_dataset(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def failing(passing, tmp_path_factory) -> Path:
    """The passing dataset with three blank frames and a duplicated manifest row."""
    bad = tmp_path_factory.mktemp("bad") / "ds"
    shutil.copytree(passing, bad)
    shard = sorted((bad / "shards").glob("train-*.npz"))[0]
    with np.load(shard) as z:
        arrays = {k: z[k].copy() for k in z.files}
    for i in range(3):
        arrays[f"lr_{i:04d}"][:] = 0
        arrays[f"hr_{i:04d}"][:] = 0
    np.savez(shard, **arrays)
    m = load_manifest(bad)
    pd.concat([m, m.iloc[[-1]]]).to_csv(bad / "manifest.csv", index=False)
    return bad


def test_gx_own_site_still_fetches_remote_hosts(passing):
    # Why the report exists: GX 1.24's own index needs CDNs and its cloud logo.
    gx_refs = references(passing / GX_SITE).refs
    assert any(urlsplit(r).netloc for r in gx_refs)
    assert (passing / GX_SITE).is_file()


def test_passing_report_is_offline(passing):
    result = validate_dataset(passing)
    assert result.success and result.docs == passing / DOCS
    assert_offline(result.docs)
    page = result.docs.read_text()
    assert "PASSED" in page and "FAILED" not in page
    version = json.loads((passing / "dataset.json").read_text())["version"]
    assert version in page
    assert f"{result.evaluated} of {result.evaluated} expectations hold" in page
    assert json.loads((passing / "validation.json").read_text())["data_docs"] == str(DOCS)


def test_failing_report_is_offline_and_names_each_failure(failing):
    result = validate_dataset(failing)
    assert not result.success and len(result.failures) >= 3
    assert_offline(result.docs)
    page = result.docs.read_text()
    assert "FAILED" in page and "PASSED" not in page
    failed = page.split("Failed expectations", 1)[1].split("All expectations", 1)[0]
    for f in result.failures:
        assert f"<code>{f.expectation}</code> on <code>{f.column}</code>" in failed, f
    assert f"Failed expectations ({len(result.failures)})" in page
    assert f"{len(result.failures)} failed" in page
    # The message people read links the same page.
    assert f"report: {result.docs}" in result.report()


def test_rejected_build_keeps_an_offline_report(tmp_path, tiny_cfg):
    cfg = tiny_cfg.model_copy(update={"min_per_split": 10_000})
    with pytest.raises(ValidationFailed) as err:
        build_validated_dataset(
            [write_clip(tmp_path / "a.avi", n=6)], tmp_path / "ds", cfg, progress=False
        )
    docs = Path(err.value.docs)
    assert docs.is_file() and docs.parts[-5:] == DOCS.parts[-5:]
    assert_offline(docs)
    assert "<code>expect_column_values_to_be_between</code> on <code>split_count</code>" in (
        docs.read_text()
    )


def test_values_are_escaped():
    hostile = '<script src="https://evil.example/x.js"></script>'
    page = render_report(
        [
            {
                "success": False,
                "expectation_config": {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": hostile, "value_set": [hostile]},
                },
                "result": {"partial_unexpected_list": [hostile], "unexpected_count": 1},
                "exception_info": {"raised_exception": True, "exception_message": hostile},
            }
        ],
        success=False,
        version=hostile,
        sources=[hostile],
    )
    assert "<script" not in page and "&lt;script" in page
