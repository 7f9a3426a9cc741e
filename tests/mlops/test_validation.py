import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from media import write_clip
from tiny import tiny_dataset_config

from videoboost.cli import main
from videoboost.data.dataset import load_manifest
from videoboost.errors import ValidationFailed
from videoboost.mlops.validation import build_validated_dataset, validate_dataset


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One built dataset for the module (a build runs the whole GX suite: seconds); tests get a
    copy of it."""
    cfg = tiny_dataset_config()
    root = tmp_path_factory.mktemp("validation-ds")
    return build_validated_dataset([write_clip(root / "a.avi", n=24)], root / "ds", cfg,
                                   progress=False).path  # fmt: skip


@pytest.fixture
def dataset(built, tmp_path):
    """A private copy of the built dataset: tests corrupt it."""
    return shutil.copytree(built, tmp_path / "ds")


def _failed(result):
    return {(f.expectation, f.column) for f in result.failures}


def test_good_dataset_passes(dataset):
    result = validate_dataset(dataset)
    assert result.success and result.evaluated >= 15 and not result.failures
    assert result.docs.is_file()


def _rewrite_frame(dataset, edit, index=0):
    """Apply ``edit(lr, hr) -> (lr, hr)`` to the ``index``-th frame of the first train shard."""
    shard = sorted((dataset / "shards").glob("train-*.npz"))[0]
    with np.load(shard) as z:
        arrays = {k: z[k].copy() for k in z.files}
    key = f"{index:04d}"
    arrays[f"lr_{key}"], arrays[f"hr_{key}"] = edit(arrays[f"lr_{key}"], arrays[f"hr_{key}"])
    np.savez(shard, **arrays)


def _assert_refused_with_report(result, *expected):
    assert not result.success
    failed = _failed(result)
    for e in expected:
        assert e in failed, failed
    assert result.docs.is_file()
    with pytest.raises(ValidationFailed) as err:
        result.raise_for_failure()
    assert str(result.docs) in str(err.value)


def test_blank_frames_are_caught(dataset):
    for i in range(3):
        _rewrite_frame(dataset, lambda lr, hr: (lr * 0, hr * 0), index=i)
    result = validate_dataset(dataset)
    _assert_refused_with_report(
        result,
        ("expect_column_values_to_be_between", "m_hr_std"),
        # The manifest's hashes no longer match the pixels either.
        ("expect_column_values_to_be_in_set", "m_hash_ok"),
    )
    assert "3 of" in " ".join(f.detail for f in result.failures if f.column == "m_hr_std")


def test_misaligned_pair_is_refused(dataset):
    # HR shifted by 8 px (2 LR px): same shapes and statistics, but it no longer matches its LR.
    _rewrite_frame(dataset, lambda lr, hr: (lr, np.roll(hr, 8, axis=(0, 1))))
    _rewrite_frame(dataset, lambda lr, hr: (lr, np.roll(hr, -8, axis=1)), index=1)
    result = validate_dataset(dataset)
    _assert_refused_with_report(result, ("expect_column_values_to_be_between", "align_mad"))


def test_wrong_scale_is_refused(dataset):
    # A x2 pair in a x4 dataset: HR is twice, not four times, its LR.
    def x2(lr, hr):
        return cv2.resize(
            hr, (hr.shape[1] // 2, hr.shape[0] // 2), interpolation=cv2.INTER_AREA
        ), hr

    _rewrite_frame(dataset, x2)
    result = validate_dataset(dataset)
    _assert_refused_with_report(
        result,
        ("expect_column_values_to_be_in_set", "ratio_h"),
        ("expect_column_values_to_be_in_set", "ratio_w"),
    )


def test_leaked_frame_between_splits_is_refused(dataset):
    m = load_manifest(dataset)
    leak = m[m.split == "train"].iloc[[0]].assign(split="val")
    pd.concat([m, leak]).to_csv(dataset / "manifest.csv", index=False)
    result = validate_dataset(dataset)
    _assert_refused_with_report(
        result,
        ("expect_column_values_to_be_in_set", "leaked"),
        ("expect_column_values_to_be_unique", "content_hash"),
    )


def test_too_few_frames_per_split(dataset):
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
        build_validated_dataset(
            [write_clip(tmp_path / "a.avi", n=6)], tmp_path / "ds", cfg, progress=False
        )
    assert not (tmp_path / "ds").exists()
    # The failing report is kept for people to read; the data is not published.
    (report,) = tmp_path.glob("ds.rejected-*")
    assert (report / "validation.json").is_file() and not (report / "shards").exists()
    docs = report / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert docs.is_file() and err.value.docs == docs


def test_cli_validate_exit_codes(dataset, capsys):
    # In-process: the command's exit code and output are under test, not interpreter start-up.
    cmd = ["dataset", "validate", str(dataset)]
    assert main(cmd) == 0, capsys.readouterr().err
    assert "expectations hold" in capsys.readouterr().out
    m = load_manifest(dataset)
    pd.concat([m, m.iloc[[0]]]).to_csv(dataset / "manifest.csv", index=False)
    assert main(cmd) == 3
    assert "FAILED expect_column_values_to_be_unique(content_hash)" in capsys.readouterr().out
