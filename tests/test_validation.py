import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from media import write_clip

from videoboost.dataset import build_dataset, load_manifest
from videoboost.errors import ValidationFailed
from videoboost.validation import validate_dataset


@pytest.fixture
def dataset(tmp_path, tiny_cfg):
    return build_dataset([write_clip(tmp_path / "a.avi", n=24)], tmp_path / "ds", tiny_cfg,
                         progress=False).path  # fmt: skip


def _failed(result):
    return {(f.expectation, f.column) for f in result.failures}


def test_good_dataset_passes(dataset):
    result = validate_dataset(dataset)
    assert result.success and result.evaluated >= 15 and not result.failures
    assert result.docs.is_file()


def test_blank_patches_are_caught(dataset):
    shard = sorted((dataset / "shards").glob("train-*.npz"))[0]
    with np.load(shard) as z:
        lr, hr = z["lr"].copy(), z["hr"].copy()
    hr[:3] = 0
    lr[:3] = 0
    np.savez_compressed(shard, lr=lr, hr=hr)
    result = validate_dataset(dataset)
    assert not result.success
    failed = _failed(result)
    assert ("expect_column_values_to_be_between", "m_hr_std") in failed
    # The manifest's hashes no longer match the pixels either.
    assert ("expect_column_values_to_be_in_set", "m_hash_ok") in failed
    assert "3 of" in " ".join(f.detail for f in result.failures if f.column == "m_hr_std")


def test_leaked_hash_between_splits_is_caught(dataset):
    m = load_manifest(dataset)
    leak = m[m.split == "train"].iloc[[0]].assign(split="val")
    pd.concat([m, leak]).to_csv(dataset / "manifest.csv", index=False)
    result = validate_dataset(dataset)
    failed = _failed(result)
    assert ("expect_column_values_to_be_in_set", "leaked") in failed
    assert ("expect_column_values_to_be_unique", "content_hash") in failed


def test_too_few_pairs_per_split(dataset):
    m = load_manifest(dataset)
    m[m.split == "train"].iloc[:0].pipe(lambda t: pd.concat([t, m[m.split == "val"].iloc[:1]]))\
        .pipe(lambda t: pd.concat([t, m[m.split == "train"].iloc[:1]]))\
        .to_csv(dataset / "manifest.csv", index=False)  # fmt: skip
    result = validate_dataset(dataset)
    assert ("expect_column_values_to_be_between", "split_count") in _failed(result)
    with pytest.raises(ValidationFailed, match="split_count"):
        result.raise_for_failure()


def test_build_refuses_to_publish_failing_dataset(tmp_path, tiny_cfg):
    # min_per_split far above what 6 frames give: the suite fails and nothing is published.
    cfg = tiny_cfg.model_copy(update={"min_per_split": 10_000})
    with pytest.raises(ValidationFailed, match="split_count") as err:
        build_dataset([write_clip(tmp_path / "a.avi", n=6)], tmp_path / "ds", cfg, progress=False)
    assert not (tmp_path / "ds").exists()
    # The failing report is kept for people to read; the data is not published.
    (report,) = tmp_path.glob("ds.rejected-*")
    assert (report / "validation.json").is_file() and not (report / "shards").exists()
    docs = report / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert docs.is_file() and err.value.docs == docs


def test_cli_validate_exit_codes(dataset):
    cmd = [sys.executable, "-m", "videoboost.cli", "dataset", "validate", str(dataset)]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "expectations hold" in ok.stdout
    m = load_manifest(dataset)
    pd.concat([m, m.iloc[[0]]]).to_csv(dataset / "manifest.csv", index=False)
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "FAILED expect_column_values_to_be_unique(content_hash)" in bad.stdout
