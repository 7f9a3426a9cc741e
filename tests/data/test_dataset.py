import json
import shutil

import cv2
import numpy as np
import pytest
from media import texture, write_clip

from videoboost.data.dataset import load_frames, load_info, load_manifest
from videoboost.errors import SourceError
from videoboost.mlops.validation import build_validated_dataset


def test_build_stores_whole_frames_one_row_each(tmp_path, tiny_cfg):
    clip = write_clip(tmp_path / "a.avi", n=24)
    info = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    assert info.validation["success"], info.validation
    m = load_manifest(info.path)
    assert len(m) == info.counts["train"] + info.counts["val"] > 0
    assert set(m.columns) >= {"source", "frame_index", "split", "lr_h", "hr_h", "content_hash"}
    assert m.frame_index.is_unique  # one row per frame, not per patch
    frames, rows = load_frames(info.path, "train")
    assert len(frames) == info.counts["train"] == len(rows)
    lr, hr = frames[0]
    assert lr.shape == (24, 32, 3) and hr.shape == (96, 128, 3)
    assert lr.dtype == hr.dtype == np.uint8
    assert info.docs.is_file()
    assert json.loads((info.path / "dataset.json").read_text())["version"] == info.version


def test_frames_are_the_source_and_its_degraded_twin(tmp_path, tiny_cfg):
    from videoboost.data.degrade import degrade, mod_crop
    from videoboost.data.frames import iter_video_frames

    # 130x98: not a multiple of 4, so the HR frame is mod-cropped (aspect otherwise kept).
    clip = write_clip(tmp_path / "a.avi", n=12, h=98, w=130)
    info = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    frames, rows = load_frames(info.path, "train")
    decoded = {f.index: f.rgb for f in iter_video_frames(clip)}
    for (lr, hr), row in zip(frames, rows.itertuples(), strict=True):
        want = mod_crop(decoded[row.frame_index], 4)
        assert hr.shape == (96, 128, 3)
        assert np.array_equal(hr, want)
        assert np.array_equal(lr, degrade(want, tiny_cfg.degrade))


def test_single_video_splits_by_time(tmp_path, tiny_cfg):
    clip = write_clip(tmp_path / "a.avi", n=40)
    info = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    m = load_manifest(info.path)
    train, val = m[m.split == "train"], m[m.split == "val"]
    assert len(train) and len(val)
    # Validation is a later contiguous segment with a gap: no frame is in both.
    assert train.frame_index.max() < val.frame_index.min() - 1
    assert not set(train.content_hash) & set(val.content_hash)


def test_every_video_and_stills_folder_contributes_to_both_splits(tmp_path, tiny_cfg):
    clips = [write_clip(tmp_path / f"{i}.avi", n=20, seed=i) for i in range(2)]
    stills = tmp_path / "stills"
    stills.mkdir()
    for i in range(10):
        cv2.imwrite(str(stills / f"p{i}.png"), texture(96, 128, seed=10 + i))
    info = build_validated_dataset([*clips, stills], tmp_path / "ds", tiny_cfg, progress=False)
    m = load_manifest(info.path)
    assert (m.groupby("source").split.nunique() == 2).all()
    photos = m[m.source == "stills"]
    assert (photos.split == "val").sum() == 2  # val_fraction 0.2 of 10 stills
    assert set(photos.source_kind) == {"still"}
    # The stills chosen for validation do not depend on the order of the build.
    again = build_validated_dataset([stills, *clips], tmp_path / "ds2", tiny_cfg, progress=False)
    m2 = load_manifest(again.path)
    assert set(m2[(m2.source == "stills") & (m2.split == "val")].frame_index) == set(
        photos[photos.split == "val"].frame_index
    )


def test_version_is_stable_and_cached(tmp_path, tiny_cfg):
    clip = write_clip(tmp_path / "a.avi", n=16)
    first = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    again = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    assert again.cached and again.version == first.version
    # Same content elsewhere, built fresh: same version, same frames.
    copy = tmp_path / "copy" / "a.avi"
    copy.parent.mkdir()
    shutil.copy(clip, copy)
    other = build_validated_dataset([copy], tmp_path / "ds2", tiny_cfg, progress=False)
    assert other.version == first.version and not other.cached
    assert load_manifest(other.path).content_hash.tolist() == (
        load_manifest(first.path).content_hash.tolist()
    )
    changed = build_validated_dataset(
        [clip], tmp_path / "ds3", tiny_cfg.model_copy(update={"seed": 1}), progress=False
    )
    assert changed.version != first.version


def test_rebuild_with_new_content_replaces_dataset(tmp_path, tiny_cfg):
    clip = write_clip(tmp_path / "a.avi", n=16)
    first = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    write_clip(clip, n=16, seed=7)
    second = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    assert second.version != first.version
    assert load_info(tmp_path / "ds").version == second.version
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")] == []


def test_an_old_format_dataset_is_rebuilt_not_trusted(tmp_path, tiny_cfg):
    clip = write_clip(tmp_path / "a.avi", n=16)
    info = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    meta = json.loads((info.path / "dataset.json").read_text())
    (info.path / "dataset.json").write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(SourceError, match="rebuild"):
        load_info(info.path)
    again = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    assert not again.cached and load_info(tmp_path / "ds").version == info.version


def test_shards_hold_a_bounded_number_of_frames(tmp_path, tiny_cfg):
    # The writer holds at most one shard in memory, whatever the number of sources.
    clips = [write_clip(tmp_path / f"{i}.avi", n=12, seed=i) for i in range(3)]
    cfg = tiny_cfg.model_copy(update={"shard_frames": 4})
    info = build_validated_dataset(clips, tmp_path / "ds", cfg, progress=False)
    m = load_manifest(info.path)
    assert m.groupby("shard").size().max() <= 4
    assert m.shard.nunique() >= len(m) // 4
    for shard in (info.path / "shards").glob("*.npz"):
        with np.load(shard) as z:
            # lr_, hr_ and lrv_ (the real profile's variants) of at most 4 frames
            assert len(z.files) <= 12


def test_bad_sources_are_reported_and_good_ones_kept(tmp_path, tiny_cfg):
    good = write_clip(tmp_path / "good.avi", n=24)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    tiny = write_clip(tmp_path / "tiny.avi", n=5, h=16, w=16)  # LR 4x4 at x4: no room to crop
    info = build_validated_dataset(
        [good, empty, junk, tiny, tmp_path / "missing.mp4"], tmp_path / "ds", tiny_cfg,
        progress=False,
    )  # fmt: skip
    skipped = {s.path.split("/")[-1]: s.skipped for s in info.skipped}
    assert set(skipped) == {"empty.mp4", "junk.mp4", "tiny.avi", "missing.mp4"}
    assert "empty" in skipped["empty.mp4"]
    assert "frames of 16x16 are smaller than 32x32" in skipped["tiny.avi"]
    recorded = json.loads((info.path / "dataset.json").read_text())["sources"]
    assert sum(bool(s["skipped"]) for s in recorded) == 4


def test_nothing_usable_raises_and_writes_nothing(tmp_path, tiny_cfg):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.mp4"):
        build_validated_dataset([empty], tmp_path / "ds", tiny_cfg, progress=False)
    tiny = write_clip(tmp_path / "tiny.avi", n=5, h=16, w=16)
    with pytest.raises(SourceError, match=r"tiny\.avi"):
        build_validated_dataset([tiny], tmp_path / "ds", tiny_cfg, progress=False)
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]


def test_near_constant_frames_are_dropped(tmp_path, tiny_cfg):
    from media import moving_frames, write_video

    frames = moving_frames(20)
    frames[3:6] = [np.full_like(frames[0], 17)] * 3  # a fade to flat grey
    clip = write_video(tmp_path / "fade.avi", frames)
    info = build_validated_dataset([clip], tmp_path / "ds", tiny_cfg, progress=False)
    m = load_manifest(info.path)
    assert not set(m.frame_index) & {3, 4, 5}
    assert m.hr_std.min() >= tiny_cfg.min_frame_std


def test_folder_of_videos_is_one_source_per_clip(tmp_path, tiny_cfg):
    folder = tmp_path / "drop"
    folder.mkdir()
    for i in range(3):
        write_clip(folder / f"clip{i}.avi", n=10, seed=i)
    info = build_validated_dataset([folder], tmp_path / "ds", tiny_cfg, progress=False)
    assert sorted(s.path.split("/")[-1] for s in info.sources) == [
        "clip0.avi", "clip1.avi", "clip2.avi",
    ]  # fmt: skip
    assert sorted(load_manifest(info.path).source.unique()) == [
        "clip0.avi", "clip1.avi", "clip2.avi",
    ]  # fmt: skip


def test_held_out_benchmark_footage_is_never_trained_on(tmp_path, tiny_cfg):
    from videoboost.data.sources import DEFAULT_SOURCES

    bikes = next(p for p in DEFAULT_SOURCES if p.suffix == ".mp4")
    copy = tmp_path / "renamed.mp4"  # a renamed copy is caught by content, not by name
    shutil.copy(bikes, copy)
    good = write_clip(tmp_path / "good.avi", n=24)
    info = build_validated_dataset([good, copy], tmp_path / "ds", tiny_cfg, progress=False)
    (skipped,) = info.skipped
    assert skipped.path == str(copy) and "held-out benchmark" in skipped.skipped


def test_reserved_sample_media_are_refused_by_content(tmp_path, tiny_cfg, monkeypatch):
    from videoboost.data import sources

    # The reserved files no longer ship, so a clip of ours stands in for one by its hash.
    reserved = write_clip(tmp_path / "renamed.avi", n=24)
    monkeypatch.setitem(sources.RESERVED_MEDIA, sources.source_hash(reserved), "OpenCV's x.avi")
    good = write_clip(tmp_path / "good.avi", n=24, seed=1)
    info = build_validated_dataset([good, reserved], tmp_path / "ds", tiny_cfg, progress=False)
    (skipped,) = info.skipped
    assert skipped.path == str(reserved)
    assert "OpenCV's x.avi" in skipped.skipped and "reserved for independent evaluation" in (
        skipped.skipped
    )


def test_shipped_training_corpus_is_disjoint_from_the_benchmark_and_reserved_media():
    from videoboost.data.frames import list_images
    from videoboost.data.sources import RESERVED_MEDIA, TRAIN_SOURCES, held_out_hashes, source_hash

    held_out = held_out_hashes()
    files = [f for s in TRAIN_SOURCES for f in (list_images(s) if s.is_dir() else [s])]
    assert len(files) >= 25  # a clip and photos: more than one look
    hashes = {source_hash(f) for f in files}
    assert not hashes & set(held_out) and not hashes & set(RESERVED_MEDIA)


def test_a_prescaled_source_is_area_downscaled_before_use_as_hr(tmp_path, tiny_cfg):
    from videoboost.data.dataset import dataset_version, prescale
    from videoboost.data.frames import iter_video_frames
    from videoboost.data.sources import source_hash

    clip = write_clip(tmp_path / "a.avi", n=16)
    cfg = tiny_cfg.model_copy(update={"prescale": {source_hash(clip): 0.5}, "window": 1})
    info = build_validated_dataset([clip], tmp_path / "ds", cfg, progress=False)
    assert info.validation["success"], info.validation  # windows prescaled like their centre
    frames, rows = load_frames(info.path, "train")
    decoded = {f.index: f.rgb for f in iter_video_frames(clip)}
    for (lr, hr), row in zip(frames, rows.itertuples(), strict=True):
        assert hr.shape == (48, 64, 3) and lr.shape == (12, 16, 3)
        assert np.array_equal(hr, prescale(decoded[row.frame_index], 0.5))
    assert info.version != dataset_version([source_hash(clip)], tiny_cfg.model_copy(
        update={"window": 1}))  # fmt: skip


def test_fields_added_later_keep_published_versions_at_their_defaults():
    from videoboost.config import DatasetConfig, SamplingConfig
    from videoboost.data.dataset import dataset_version

    # The version of this config before `prescale` and `max_frames_per_clip` existed.
    assert dataset_version(["ab", "cd"], DatasetConfig()) == "d3d52d66e0b2c819"
    capped = DatasetConfig(sampling=SamplingConfig(max_frames_per_clip=60))
    assert dataset_version(["ab", "cd"], capped) != "d3d52d66e0b2c819"
    assert dataset_version(["ab", "cd"], DatasetConfig(prescale={"ab": 0.5})) != (
        "d3d52d66e0b2c819"
    )
