"""Path safety of `videoboost upscale`, batch planning and video temp files: only the paths given
are read, outputs land only in the output folder, nothing is written through a link, temp files
are private and cleaned up, and a killed run leaves only its resumable segment folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import texture
from tiny import hidden_files, make_clip, upscale_cli

from videoboost.batch.jobs import plan_jobs
from videoboost.video import write as video_write
from videoboost.video.pipeline import OutputError, VideoWriter, probe, upscale_video

SCALE = 4
ROOT = Path(__file__).resolve().parents[2]


def _png(path: Path, seed: int = 0) -> Path:
    cv2.imwrite(str(path), texture(12, 16, seed=seed))
    return path


def _umask_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


# --------------------------------------------------------------------------- reading


def test_a_link_out_of_an_input_folder_is_not_followed(tmp_path, model_file, capsys):
    outside = tmp_path / "private"
    outside.mkdir()
    _png(outside / "secret.png")
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png")
    (src / "secret.png").symlink_to(outside / "secret.png")
    (src / "alias.png").symlink_to(src / "a.png")  # a link within the folder is fine
    out = tmp_path / "out"

    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(out))

    assert rc == 2  # reported as a failed input, the others written
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "alias.png"]
    assert f"FAILED {src / 'secret.png'}: links outside the folder; skipped" in err
    assert "Traceback" not in err


def test_file_names_never_leave_the_output_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    names = ["a..b.png", "-o.png", "space name.png", "ünï.png", "new\nline.png", "x.PNG"]
    hidden = ["..png", "...mp4", ".hidden.png", "..%2f..%2fetc.png"]
    for name in names + hidden:
        (src / name).write_bytes(b"x")  # planning only looks at names
    out = tmp_path / "out"

    jobs, problems = plan_jobs([str(src / ".." / "in")], out)

    assert problems == []
    assert sorted(job.src.name for job in jobs) == sorted(names)
    for job in jobs:
        assert job.dst.parent == out
        assert job.dst.name == Path(job.src.name).stem + ".png"
        assert job.dst.resolve().parent == out.resolve()


def test_output_folder_inside_the_input_folder_is_not_read_back(tmp_path, model_file, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png")
    make_clip(src / "clip.mp4", 4, audio_streams=0)
    out = src / "out"

    for _ in range(2):  # the second run sees the same two inputs, not the first run's outputs
        rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(out))
        assert rc == 0, err
        assert "; 2 input(s)" in err
        assert sorted(p.name for p in out.iterdir()) == ["a.png", "clip.mp4"]

    # The input folder itself as output: the video would overwrite its source.
    rc, err = upscale_cli(capsys, model_file, str(src), "-o", str(src))
    assert rc == 2
    assert "would overwrite an input" in err


# --------------------------------------------------------------------------- writing


def test_existing_output_folder_file_and_link(tmp_path, model_file, capsys):
    clip = make_clip(tmp_path / "clip.mp4", 4, audio_streams=0)

    folder = tmp_path / "existing"
    folder.mkdir()
    rc, err = upscale_cli(capsys, model_file, str(clip), "-o", str(folder))
    assert rc == 0, err
    assert probe(folder / "clip.mp4").width == 48 * SCALE

    file = tmp_path / "old.mp4"
    file.write_bytes(b"replaced only when the new one is complete")
    rc, err = upscale_cli(capsys, model_file, str(clip), "-o", str(file))
    assert rc == 0, err
    assert probe(file).width == 48 * SCALE

    rc, err = upscale_cli(capsys, model_file, str(tmp_path / "existing"), "-o", str(file))
    assert rc == 2
    assert "is a file; several inputs need an output folder" in err

    # An output name that is a link: the link is replaced, its target is never written.
    victim = tmp_path / "victim.mp4"
    victim.write_bytes(b"must survive")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "clip.mp4").symlink_to(victim)
    rc, err = upscale_cli(capsys, model_file, str(clip), "-o", str(linked / "clip.mp4"))
    assert rc == 0, err
    assert victim.read_bytes() == b"must survive"
    assert not (linked / "clip.mp4").is_symlink()
    assert probe(linked / "clip.mp4").width == 48 * SCALE
    assert hidden_files(linked) == [] and hidden_files(tmp_path) == []


def test_temp_files_are_private_and_removed(tmp_path):
    src = make_clip(tmp_path / "in.mp4", 6)
    out = tmp_path / "out"
    dst = out / "up.mp4"
    seen = []

    def inspect(frames):  # runs while the segment's temp file is open
        parts = out / ".up.mp4.parts"
        temps = list(parts.glob(".seg-*.partial.mp4"))
        seen.append((parts.stat().st_mode & 0o777, [t.stat().st_mode & 0o777 for t in temps]))
        yield from frames

    # Stages in turn, so the segment's file exists when the model stage starts; the overlapped
    # path writes through the same VideoWriter on its encoder thread.
    upscale_video(src, dst, inspect, segment_frames=2, preset="ultrafast", queue_frames=0)

    assert seen == [(0o700, [0o600])] * 3
    assert dst.stat().st_mode & 0o777 == _umask_mode()
    assert hidden_files(out) == []

    writer_dst = tmp_path / "w.mp4"
    with VideoWriter(writer_dst, 25, preset="ultrafast") as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        (temp,) = tmp_path.glob(".w.mp4.*.partial.mp4")
        assert temp.stat().st_mode & 0o777 == 0o600
    assert writer_dst.stat().st_mode & 0o777 == _umask_mode()
    assert hidden_files(tmp_path) == []


def test_links_at_temp_and_work_folder_names_are_not_followed(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_bytes(b"must survive")
    planted = tmp_path / ".planted.partial.mp4"
    planted.symlink_to(victim)
    monkeypatch.setattr(video_write, "_temp_path", lambda dst: planted)
    with (
        pytest.raises(OutputError, match="cannot create the temp file"),
        VideoWriter(tmp_path / "w.mp4", 25) as writer,
    ):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    assert victim.read_bytes() == b"must survive"
    monkeypatch.undo()

    src = make_clip(tmp_path / "in.mp4", 4, audio_streams=0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_bytes(b"keep")
    (tmp_path / ".up.mp4.parts").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="taken by a link or a file"):
        upscale_video(src, tmp_path / "up.mp4", lambda f: f, preset="ultrafast")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep"]


@pytest.mark.slow
def test_a_killed_run_leaves_only_its_segment_folder(tmp_path):
    src = make_clip(tmp_path / "in.mp4", 40, audio_streams=0)
    out = tmp_path / "out"
    dst = out / "up.mp4"
    script = (
        "import sys, time\n"
        "from videoboost.video.pipeline import upscale_video\n"
        "def slow(frames):\n"
        "    time.sleep(0.3)\n"
        "    return frames\n"
        "upscale_video(sys.argv[1], sys.argv[2], slow, segment_frames=2, preset='ultrafast')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(src), str(dst)], cwd=ROOT)
    manifest = out / ".up.mp4.parts" / "manifest.json"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(json.loads(manifest.read_text())["segments"]) >= 2:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()

    assert not dst.exists()
    assert hidden_files(out) == [".up.mp4.parts"]  # nothing else; documented as resumable

    res = upscale_video(src, dst, lambda f: f, segment_frames=2, preset="ultrafast")
    assert res.segments_reused >= 2
    assert probe(dst, count_frames=True).frame_count == 40
    assert hidden_files(out) == []
