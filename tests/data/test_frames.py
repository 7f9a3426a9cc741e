import numpy as np
import pytest
from media import moving_frames, write_clip, write_video

from videoboost.config import SamplingConfig
from videoboost.data.frames import iter_source, iter_video_frames, read_image, read_video_info
from videoboost.errors import SourceError


def test_video_metadata_and_every_frame(tmp_path):
    clip = write_clip(tmp_path / "c.avi", n=30)
    info = read_video_info(clip)
    assert (info.width, info.height, info.frame_count) == (128, 96, 30)
    assert info.fps == pytest.approx(25.0)
    frames = list(iter_video_frames(clip))
    assert [f.index for f in frames] == list(range(30))
    assert frames[0].rgb.shape == (96, 128, 3) and frames[0].rgb.dtype == np.uint8


def test_frames_are_rgb(tmp_path):
    red = [np.zeros((32, 32, 3), np.uint8) for _ in range(3)]
    for f in red:
        f[..., 0] = 200
    frame = next(iter_video_frames(write_video(tmp_path / "r.avi", red)))
    assert frame.rgb[..., 0].mean() > 150 and frame.rgb[..., 2].mean() < 50


def test_sampling_every_and_cap(tmp_path):
    clip = write_clip(tmp_path / "c.avi", n=30)
    every3 = [f.index for f in iter_source(clip, SamplingConfig(every=3, dedupe_threshold=0))]
    assert every3 == list(range(0, 30, 3))
    capped = list(iter_source(clip, SamplingConfig(max_frames=4, dedupe_threshold=0)))
    assert len(capped) == 4


def test_duplicate_frames_are_skipped(tmp_path):
    clip = write_clip(tmp_path / "static.avi", n=20, static=10)
    kept = [f.index for f in iter_source(clip, SamplingConfig(dedupe_threshold=1.0))]
    # One of the ten identical opening frames survives; every moving frame does.
    assert kept[0] == 0 and 1 not in kept and len(kept) == 11
    everything = list(iter_source(clip, SamplingConfig(dedupe_threshold=0)))
    assert len(everything) == 20


def test_folder_of_stills(tmp_path):
    import cv2

    folder = tmp_path / "stills"
    folder.mkdir()
    for i, f in enumerate(moving_frames(3)):
        cv2.imwrite(str(folder / f"{i:02d}.png"), f[..., ::-1])
    (folder / "notes.txt").write_text("not an image")
    frames = list(iter_source(folder, SamplingConfig(dedupe_threshold=0)))
    assert len(frames) == 3
    assert np.array_equal(frames[1].rgb, moving_frames(3)[1])


def test_greyscale_still_becomes_rgb(tmp_path):
    import cv2

    path = tmp_path / "g.png"
    cv2.imwrite(str(path), np.full((10, 12), 77, np.uint8))
    assert read_image(path).shape == (10, 12, 3)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.mp4", b"", "empty"),
        ("noise.mp4", bytes(range(256)) * 40, "cannot open"),
        ("text.avi", b"hello, not a video\n" * 10, "cannot open"),
    ],
)
def test_unreadable_videos_name_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError, match=reason) as err:
        list(iter_source(path))
    assert name in str(err.value)


def test_truncated_video(tmp_path):
    clip = write_clip(tmp_path / "t.mp4", n=20)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    # A truncated file either fails to open or yields fewer frames; it never hangs or crashes.
    try:
        frames = list(iter_source(cut, SamplingConfig(dedupe_threshold=0)))
    except SourceError as exc:
        assert "cut.mp4" in str(exc)
    else:
        assert len(frames) < 20


def test_missing_path(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        list(iter_source(tmp_path / "nope.mp4"))


def test_the_per_clip_cap_spreads_over_the_whole_clip(tmp_path):
    import cv2

    from videoboost.data.frames import sample_frames

    clip = write_clip(tmp_path / "c.avi", n=30)
    cfg = SamplingConfig(every=2, max_frames_per_clip=5, dedupe_threshold=0)
    picked = [f.index for f in iter_source(clip, cfg)]
    # One every-2 frame from the middle of each fifth of the clip, not its first five.
    assert picked == [2, 8, 14, 20, 26]
    # A clip under the cap keeps every k-th frame; an unknown length falls back to the first.
    short = SamplingConfig(every=2, max_frames_per_clip=20, dedupe_threshold=0)
    assert [f.index for f in iter_source(clip, short)] == list(range(0, 30, 2))
    unknown = [f.index for f in sample_frames(iter_video_frames(clip), cfg)]
    assert unknown == [0, 2, 4, 6, 8]
    # Stills are distinct photos: the per-clip cap is not theirs.
    folder = tmp_path / "stills"
    folder.mkdir()
    for i, f in enumerate(moving_frames(7)):
        cv2.imwrite(str(folder / f"{i}.png"), f)
    assert len(list(iter_source(folder, cfg))) == 7
