import json
import shutil

import numpy as np
import pytest
from media import write_clip

from videoboost.dataset import (
    build_dataset,
    load_info,
    load_manifest,
    load_split,
    load_val_frames,
)
from videoboost.errors import SourceError


def test_build_counts_shapes_and_files(tmp_path, tiny_cfg):
    clip = write_clip(tmp_path / "a.avi", n=24)
    info = build_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    assert info.validation["success"], info.validation
    m = load_manifest(info.path)
    assert len(m) == info.counts["train"] + info.counts["val"] > 0
    assert set(m.columns) >= {"source", "frame_index", "split", "y", "x", "content_hash"}
    lr, hr = load_split(info.path, "train")
    assert lr.shape[1:] == (8, 8, 3) and hr.shape[1:] == (32, 32, 3)
    assert lr.dtype == hr.dtype == np.uint8
    assert len(lr) == info.counts["train"]
    frames = load_val_frames(info.path)
    assert frames and frames[0][1].shape == (96, 128, 3) and frames[0][0].shape == (24, 32, 3)
    assert info.docs.is_file()
    assert json.loads((info.path / "dataset.json").read_text())["version"] == info.version


def test_patches_are_aligned_crops(tmp_path, tiny_cfg):
    from videoboost.degrade import degrade, mod_crop
    from videoboost.frames import iter_video_frames

    clip = write_clip(tmp_path / "a.avi", n=12)
    info = build_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    m = load_manifest(info.path)
    row = m[m.split == "train"].iloc[0]
    frame = next(f for f in iter_video_frames(clip) if f.index == row.frame_index)
    hr = mod_crop(frame.rgb, 4)
    lr_full = degrade(hr, tiny_cfg.degrade)
    lr, hr_p = load_split(info.path, "train")
    y, x = row.y, row.x
    assert np.array_equal(hr_p[row.shard_index], hr[4 * y : 4 * y + 32, 4 * x : 4 * x + 32])
    assert np.array_equal(lr[row.shard_index], lr_full[y : y + 8, x : x + 8])


def test_single_source_splits_by_time(tmp_path, tiny_cfg):
    clip = write_clip(tmp_path / "a.avi", n=40)
    info = build_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    m = load_manifest(info.path)
    train, val = m[m.split == "train"], m[m.split == "val"]
    assert len(train) and len(val)
    # Validation is a later contiguous segment with a gap: no frame is in both.
    assert train.frame_index.max() < val.frame_index.min() - 1
    assert not set(train.content_hash) & set(val.content_hash)


def test_several_sources_split_by_source(tmp_path, tiny_cfg):
    clips = [write_clip(tmp_path / f"{i}.avi", n=10, seed=i) for i in range(4)]
    info = build_dataset(clips, tmp_path / "ds", tiny_cfg, progress=False)
    m = load_manifest(info.path)
    per_source = m.groupby("source").split.nunique()
    assert (per_source == 1).all()  # a source is wholly train or wholly val
    assert set(m.split) == {"train", "val"}


def test_version_is_stable_and_cached(tmp_path, tiny_cfg):
    clip = write_clip(tmp_path / "a.avi", n=16)
    first = build_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    again = build_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    assert again.cached and again.version == first.version
    # Same content elsewhere, built fresh: same version, same pairs.
    copy = tmp_path / "copy" / "a.avi"
    copy.parent.mkdir()
    shutil.copy(clip, copy)
    other = build_dataset([copy], tmp_path / "ds2", tiny_cfg, progress=False)
    assert other.version == first.version and not other.cached
    assert load_manifest(other.path).content_hash.tolist() == (
        load_manifest(first.path).content_hash.tolist()
    )
    changed = build_dataset(
        [clip], tmp_path / "ds3", tiny_cfg.model_copy(update={"seed": 1}), progress=False
    )
    assert changed.version != first.version


def test_rebuild_with_new_content_replaces_dataset(tmp_path, tiny_cfg):
    clip = write_clip(tmp_path / "a.avi", n=16)
    first = build_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    write_clip(clip, n=16, seed=7)
    second = build_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    assert second.version != first.version
    assert load_info(tmp_path / "ds").version == second.version
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")] == []


def test_bad_sources_are_reported_and_good_ones_kept(tmp_path, tiny_cfg):
    good = write_clip(tmp_path / "good.avi", n=24)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    tiny = write_clip(tmp_path / "tiny.avi", n=5, h=16, w=16)  # smaller than one patch at x4
    info = build_dataset(
        [good, empty, junk, tiny, tmp_path / "missing.mp4"], tmp_path / "ds", tiny_cfg,
        progress=False,
    )  # fmt: skip
    skipped = {s.path.split("/")[-1]: s.skipped for s in info.skipped}
    assert set(skipped) == {"empty.mp4", "junk.mp4", "tiny.avi", "missing.mp4"}
    assert "empty" in skipped["empty.mp4"]
    assert "smaller than one 32x32 HR patch" in skipped["tiny.avi"]
    recorded = json.loads((info.path / "dataset.json").read_text())["sources"]
    assert sum(bool(s["skipped"]) for s in recorded) == 4


def test_nothing_usable_raises_and_writes_nothing(tmp_path, tiny_cfg):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.mp4"):
        build_dataset([empty], tmp_path / "ds", tiny_cfg, progress=False)
    tiny = write_clip(tmp_path / "tiny.avi", n=5, h=16, w=16)
    with pytest.raises(SourceError, match=r"tiny\.avi"):
        build_dataset([tiny], tmp_path / "ds", tiny_cfg, progress=False)
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]


def test_tf_loader_batches_and_augments(tmp_path, tiny_cfg):
    from videoboost.dataset import make_tf_dataset

    info = build_dataset([write_clip(tmp_path / "a.avi", n=24)], tmp_path / "ds", tiny_cfg,
                         progress=False)  # fmt: skip
    ds = make_tf_dataset(info.path, "train", 4, augment=True, seed=0, repeat=True)
    lr, hr = next(iter(ds))
    assert lr.shape == (4, 8, 8, 3) and hr.shape == (4, 32, 32, 3)
    assert lr.dtype.name == "float32" and float(hr.numpy().max()) <= 255
    # Augmented pairs stay aligned: shrinking HR still matches LR closely.
    import cv2

    for a, b in zip(lr.numpy(), hr.numpy(), strict=True):
        shrunk = cv2.resize(b, (8, 8), interpolation=cv2.INTER_AREA)
        assert np.abs(shrunk - a).mean() < 12


def test_folder_of_videos_is_one_source_per_clip(tmp_path, tiny_cfg):
    folder = tmp_path / "drop"
    folder.mkdir()
    for i in range(3):
        write_clip(folder / f"clip{i}.avi", n=10, seed=i)
    info = build_dataset([folder], tmp_path / "ds", tiny_cfg, progress=False)
    assert sorted(s.path.split("/")[-1] for s in info.sources) == [
        "clip0.avi", "clip1.avi", "clip2.avi",
    ]  # fmt: skip
    m = load_manifest(info.path)
    assert (m.groupby("source").split.nunique() == 1).all()


def test_held_out_benchmark_footage_is_never_trained_on(tmp_path, tiny_cfg):
    from videoboost.evaluate import DEFAULT_SOURCES

    bikes = next(p for p in DEFAULT_SOURCES if p.suffix == ".mp4")
    copy = tmp_path / "renamed.mp4"  # a renamed copy is caught by content, not by name
    shutil.copy(bikes, copy)
    good = write_clip(tmp_path / "good.avi", n=24)
    info = build_dataset([good, copy], tmp_path / "ds", tiny_cfg, progress=False)
    (skipped,) = info.skipped
    assert skipped.path == str(copy) and "held-out benchmark" in skipped.skipped
