"""The video tier's own parts: aligned windows, clip ends and cuts, segment context, window
datasets (built, validated, refused when tampered with) and training on them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from media import moving_frames, texture, write_video

from videoboost.config import DatasetConfig, DegradeConfig, GeneratorConfig, TrainConfig
from videoboost.data.align import (
    align_to,
    is_cut,
    iter_windows,
    still_window,
    window_indices,
    window_of_channels,
)
from videoboost.mlops.validation import validate_dataset

# The stated error of alignment: an aligned neighbour matches its centre to within this mean
# absolute difference (grey levels, 8 px border left out) on a smooth texture moved by a
# sub-pixel step. Moved but not aligned, the same pair differs by several times as much.
ALIGNED_MAD = 1.0


def _mad(a: np.ndarray, b: np.ndarray, border: int = 8) -> float:
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return float(np.abs(a.astype(np.float32) - b).mean())


def _moved(img: np.ndarray, dx: float, dy: float, angle: float = 0.0) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("dx, dy, angle", [(1.5, -0.75, 0.0), (-2.25, 1.0, 0.3), (0.4, 0.3, 0.0)])
def test_a_shifted_neighbour_is_aligned_onto_the_centre(dx, dy, angle):
    centre = cv2.GaussianBlur(texture(96, 128, seed=1), (0, 0), 1.0)
    neighbour = _moved(centre, dx, dy, angle)
    before = _mad(neighbour, centre)
    after = _mad(align_to(centre, neighbour), centre)
    assert after < ALIGNED_MAD, (before, after)
    assert before > 2 * after


def _two_shots(n_a: int = 4, n_b: int = 4) -> list[np.ndarray]:
    return moving_frames(n_a, 48, 64, seed=1) + moving_frames(n_b, 48, 64, seed=9)


def test_clip_ends_replicate_and_a_scene_cut_resets_the_window():
    frames = _two_shots()
    assert is_cut(frames[3], frames[4]) and not is_cut(frames[2], frames[3])
    windows = list(iter_windows(iter(frames), 1))
    assert len(windows) == len(frames)
    assert all(w.shape == (48, 64, 9) for w in windows)

    def part(w, j):  # stacking order: centre, t-1, t+1
        return w[..., 3 * j : 3 * j + 3]

    # First and last frames: the missing neighbour is the centre itself.
    assert np.array_equal(part(windows[0], 1), frames[0])
    assert np.array_equal(part(windows[-1], 2), frames[-1])
    # Either side of the cut: nothing of the other shot gets in.
    assert np.array_equal(part(windows[4], 1), frames[4])
    assert np.array_equal(part(windows[3], 2), frames[3])
    # Inside a shot the neighbours are real, aligned frames (not the centre, close to it).
    assert not np.array_equal(part(windows[5], 1), frames[5])
    assert _mad(part(windows[5], 1), frames[5], 4) < _mad(frames[4], frames[5], 4)
    assert window_indices(8, 4, 2, [False] * 4 + [True] + [False] * 3) == [4, 4, 5, 4, 6]


@pytest.mark.parametrize("k", [1, 2])
def test_segments_with_context_give_the_windows_of_one_pass(k):
    frames = _two_shots(5, 5)
    whole = list(iter_windows(iter(frames), k))
    for a, b in [(0, 3), (3, 4), (4, 8), (8, 10), (2, 7)]:
        part = list(
            iter_windows(
                iter(frames[a:b]), k, before=frames[max(0, a - k) : a], after=frames[b : b + k]
            )
        )
        assert len(part) == b - a
        for got, want in zip(part, whole[a:b], strict=True):
            assert np.array_equal(got, want)
    # Without the context a segment's first window differs (its left neighbour is missing).
    alone = next(iter_windows(iter(frames[2:7]), k))
    assert not np.array_equal(alone, whole[2])


def test_a_still_is_a_repeated_window_and_channels_name_the_window():
    img = texture(16, 20)
    assert still_window(img, 0) is img
    assert np.array_equal(still_window(img, 2)[..., 12:], img)
    assert [window_of_channels(c) for c in (3, 9, 15)] == [0, 1, 2]
    with pytest.raises(ValueError, match="2k\\+1"):
        window_of_channels(6)


# --------------------------------------------------------------------------- datasets


def _window_cfg(tiny_cfg: DatasetConfig, **kw) -> DatasetConfig:
    return tiny_cfg.model_copy(update={"window": 1, "val_fraction": 0.3, **kw})


@pytest.fixture(scope="module")
def window_dataset(tmp_path_factory):
    """A clip of two shots and a folder of two stills, built with windows (k = 1)."""
    from videoboost.config import SamplingConfig
    from videoboost.mlops.validation import build_validated_dataset

    tmp = tmp_path_factory.mktemp("windows")
    clip = write_video(
        tmp / "shots.avi", moving_frames(10, 96, 128, seed=2) + moving_frames(10, 96, 128, seed=7)
    )
    stills = tmp / "stills"
    stills.mkdir()
    for i in range(2):
        cv2.imwrite(str(stills / f"s{i}.png"), texture(96, 128, seed=20 + i))
    cfg = DatasetConfig(
        degrade=DegradeConfig(scale=4),
        sampling=SamplingConfig(dedupe_threshold=0.0),
        min_lr_side=8,
        min_per_split=2,
        window=1,
        val_fraction=0.3,
    )
    return build_validated_dataset([clip, stills], tmp / "ds", cfg, progress=False)


def test_a_window_dataset_holds_neighbours_in_order_without_crossing_cuts_or_splits(
    window_dataset,
):
    from videoboost.data.shards import load_manifest, load_windows

    info = window_dataset
    assert info.validation["success"]
    rows = load_manifest(info.path)
    clip = rows[rows.source_kind == "video"].set_index("frame_index")
    used = {i: dict(p.split(":") for p in w.split()) for i, w in clip["window"].items()}
    assert used[0] == {"-1": "0", "+1": "1"}  # the clip's start replicates
    assert used[10] == {"-1": "10", "+1": "11"}  # the first frame of the second shot
    assert used[9] == {"-1": "8", "+1": "9"}  # the last frame of the first shot
    # Train windows end before the validation part of the clip begins, and the other way round.
    val_start = clip[clip.split == "val"].index.min()
    for i, u in used.items():
        indices = [int(j) for j in u.values()]
        if clip.loc[i, "split"] == "train":
            assert max(indices) < val_start
        else:
            assert min(indices) >= val_start
    stills = rows[rows.source_kind == "still"]
    assert set(stills["window"]) == {"synthetic"}
    windows = load_windows(info.path, rows)
    # Per LR entry (the clean shrink, then each real-profile variant) its two neighbours.
    assert set(rows["variants"]) == {6}
    assert all(w.shape == (7, 2, r.lr_h, r.lr_w, 3) for w, r in zip(windows, rows.itertuples(),
                                                                     strict=True))  # fmt: skip
    # A still's synthetic neighbours are moved copies: not the centre, but alignable onto it.
    lr = np.load(info.path / "shards" / rows.iloc[-1].shard)[f"lr_{rows.iloc[-1].shard_index:04d}"]
    assert not np.array_equal(windows[-1][0, 0], lr)


def test_a_window_dataset_with_foreign_neighbours_is_refused(window_dataset, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(window_dataset.path, root)
    # Give every training frame the neighbours of an unrelated picture (as a builder that
    # mixed up its frame buffer would).
    for shard in sorted((root / "shards").glob("train-*.npz")):
        with np.load(shard) as z:
            arrays = {k: z[k].copy() for k in z.files}
        for key in [k for k in arrays if k.startswith("lrw_")]:
            shape = arrays[key].shape
            foreign = texture(shape[2], shape[3], seed=99)
            arrays[key] = np.broadcast_to(foreign, shape).copy()
        np.savez(shard, **arrays)
    result = validate_dataset(root)
    assert not result.success
    failed = {f.column for f in result.failures}
    assert "window_misfit" in failed, failed


# --------------------------------------------------------------------------- training


def _tiny_video(**kw) -> TrainConfig:
    base = dict(
        generator=GeneratorConfig(tier="video", filters=8, blocks=1, scale=4),
        steps_per_epoch=10,
        pretrain_epochs=1,
        batch_size=4,
        crop=8,
        warmup_steps=2,
        val_frames=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_the_video_tier_trains_on_aligned_windows_and_scores_the_video_track(
    window_dataset, tmp_path
):
    from videoboost.config import BenchmarkConfig
    from videoboost.evaluation.benchmark import build_benchmark, evaluate_keras
    from videoboost.training.train import crop_plan, train

    cfg = _tiny_video()
    plan = crop_plan(window_dataset.path, cfg)
    assert plan.channels == 9
    result = train(window_dataset.path, cfg, tmp_path / "work", progress=False)
    assert result.generator.inputs[0].shape[-1] == 9
    clip = write_video(tmp_path / "bench.avi", moving_frames(6, 96, 128, seed=5))
    bench = build_benchmark(4, [clip], BenchmarkConfig(frames=6), cache_dir=tmp_path / "b")
    report = evaluate_keras(result.generator, bench, BenchmarkConfig(frames=6, fps_runs=0))
    m = report.metrics
    assert "bench_psnr_gain_video" in m and "bench_flicker_video" in m
    # The video track holds the clip's frames alone, and stays out of the mean over tracks.
    averaged = [m[k] for k in ("bench_psnr", *(f"bench_psnr_{t}" for t in bench.tracks[1:-1]))]
    assert m["bench_psnr_mean"] == pytest.approx(np.mean(averaged))
    assert [r["name"] for r in report.track_sources["video"]] == ["bench.avi"]


def test_the_video_tier_refuses_a_dataset_without_windows(train_dataset):
    from videoboost.data.shards import load_config
    from videoboost.errors import VideoBoostError
    from videoboost.training.train import crop_plan

    # The session's training dataset (tests/conftest.py), built without windows: no new build.
    assert load_config(train_dataset).window == 0
    with pytest.raises(VideoBoostError, match="--window 1"):
        crop_plan(train_dataset, _tiny_video())
