"""Faults around `videoboost upscale`: a real `kill -9` mid-video, a full disk, an unwritable
output folder. Real processes, real files, real limits (no mocks)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import texture
from tiny import audio_packets, decoded_frames, kill_9_when, make_clip

from videoboost.cli import main
from videoboost.video.pipeline import probe

ROOT = Path(__file__).resolve().parents[2]
SCALE = 4
FRAMES, SEGMENT = 64, 4  # the kill -9 test's clip: 16 segments
SEGMENTS = FRAMES // SEGMENT


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _litter(folder: Path) -> list[str]:
    """Temp files of an atomic write left anywhere under ``folder``."""
    return sorted(str(p) for p in folder.rglob("*") if ".partial" in p.name)


@pytest.mark.slow
def test_kill_9_mid_video_then_the_same_command_resumes(tmp_path, model_file, capsys):
    # Small frames, many short segments: the kill still lands with segments done and more to
    # go (the manifest is polled every 10 ms), while the three runs stay cheap.
    src = make_clip(tmp_path / "src.mp4", FRAMES, size=(96, 64), rate=Fraction(25))
    before = _digest(src)
    out = tmp_path / "out"
    dst = out / "src.mp4"
    args = ["upscale", str(src), "-o", str(dst), "--model", str(model_file),
            "--segment-frames", str(SEGMENT), "--quiet", "--threads", "1"]  # fmt: skip
    manifest = out / ".src.mp4.parts" / "manifest.json"

    child = subprocess.Popen(
        [sys.executable, "-m", "videoboost.cli", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    done_at_kill = 0

    def segments_done() -> bool:
        nonlocal done_at_kill
        # Whatever the child is doing, nothing may ever be visible at the output path.
        assert not dst.exists(), "a partial output appeared at the output path"
        if out.is_dir():
            assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []
        try:
            done_at_kill = len(json.loads(manifest.read_text())["segments"])
        except (OSError, ValueError):
            done_at_kill = 0
        return done_at_kill >= 2  # mid-way: segments done, more to go

    kill_9_when(child, segments_done)
    err = child.stderr.read().decode(errors="replace")
    assert child.returncode == -signal.SIGKILL, f"the child was not killed mid-way:\n{err}"
    assert 2 <= done_at_kill < SEGMENTS
    assert not dst.exists()
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []

    # The same command again: continues from the last finished segment.
    assert main(args) == 0, capsys.readouterr().err
    text = capsys.readouterr().err
    reused = int(text.split("resumed: ", 1)[1].split(" of ", 1)[0])
    assert done_at_kill <= reused < SEGMENTS
    assert f"of {SEGMENTS} segments were already done" in text

    info = probe(dst, count_frames=True)
    assert (info.frame_count, info.fps) == (FRAMES, Fraction(25))
    assert (info.width, info.height) == (96 * SCALE, 64 * SCALE)
    assert audio_packets(dst) == audio_packets(src)
    assert _digest(src) == before
    assert sorted(p.name for p in out.iterdir()) == ["src.mp4"]  # work folder and temps gone

    # Exactly what an uninterrupted run writes (segments are encoded independently).
    fresh = tmp_path / "fresh" / "src.mp4"
    assert main([*args[:3], str(fresh), *args[4:]]) == 0
    resumed, whole = decoded_frames(dst), decoded_frames(fresh)
    assert len(resumed) == len(whole) == FRAMES
    for a, b in zip(resumed, whole, strict=True):
        np.testing.assert_array_equal(a, b)


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """A real ``RLIMIT_FSIZE`` on this process: writes past ``nbytes`` fail like a full disk.

    SIGXFSZ is ignored meanwhile, so the write returns EFBIG instead of killing pytest.
    """
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def _inputs(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    video = make_clip(folder / "clip.mp4", 16, size=(96, 64))
    image = folder / "still.png"
    cv2.imwrite(str(image), texture(64, 96, seed=4))
    return video, image


def test_full_disk_is_a_clear_error_and_leaves_inputs_untouched(tmp_path, model_file, capsys):
    video, image = _inputs(tmp_path / "in")
    before = {p: _digest(p) for p in (video, image, model_file)}
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.mp4").write_bytes(b"an older result")  # must survive a failed run

    for src in (video, image):
        with file_size_limit(20_000):  # a 4x frame of texture does not fit
            rc = main(["upscale", str(src), "-o", str(out), "--model", str(model_file),
                       "--segment-frames", "8", "--quiet"])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 8, err
        assert f"FAILED {src}" in err and "no space left" in err.lower() and "free" in err, err
        assert "Traceback" not in err
    assert {p: _digest(p) for p in before} == before
    assert (out / "clip.mp4").read_bytes() == b"an older result"
    assert not (out / "still.png").exists()
    assert _litter(out) == []


def test_output_folder_that_cannot_be_created_is_a_clear_error(tmp_path, model_file, capsys):
    video, image = _inputs(tmp_path / "in")
    before = {p: _digest(p) for p in (video, image)}
    blocker = tmp_path / "report.txt"
    blocker.write_text("a file where the output folder should be")
    for src, name in ((video, "clip.mp4"), (image, "still.png")):
        rc = main(["upscale", str(src), "-o", str(blocker / name), "--model", str(model_file),
                   "--quiet"])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 8, err
        assert str(blocker) in err and "not a folder" in err and "Traceback" not in err, err
    assert blocker.read_text() == "a file where the output folder should be"
    assert {p: _digest(p) for p in before} == before


@contextlib.contextmanager
def unprivileged():
    """Drop to ``nobody`` for file permissions (root ignores them), and back afterwards."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_read_only_output_folder_is_a_clear_error(model_file, capsys, monkeypatch):
    # Under /tmp (world-traversable), not pytest's 0700 tmp_path: `nobody` must read inputs.
    base = Path(tempfile.mkdtemp(prefix="vb-readonly-"))
    try:
        base.chmod(0o755)
        (base / "state").mkdir(mode=0o777)
        (base / "state").chmod(0o777)
        monkeypatch.setenv("VIDEOBOOST_HOME", str(base / "state"))
        video, image = _inputs(base / "in")
        for p in (base / "in", video, image):
            p.chmod(0o755 if p.is_dir() else 0o644)
        model = base / "tiny.keras"
        shutil.copy(model_file, model)
        model.chmod(0o644)
        before = {p: _digest(p) for p in (video, image)}
        # One run as ourselves first: the interpreter (under /root here) can then not be read by
        # `nobody`, so every module the command imports lazily must already be loaded.
        assert main(["upscale", str(video), str(image), "-o", str(base / "warm"), "--model",
                     str(model), "--quiet"]) == 0  # fmt: skip
        out = base / "out"
        out.mkdir()
        out.chmod(0o555)
        for src in (video, image):
            with unprivileged():
                rc = main(["upscale", str(src), "-o", str(out), "--model", str(model),
                           "--quiet"])  # fmt: skip
            err = capsys.readouterr().err
            assert rc == 8, err
            assert str(out) in err and "not writable" in err and "Traceback" not in err, err
        assert list(out.iterdir()) == []
        assert {p: _digest(p) for p in before} == before
    finally:
        shutil.rmtree(base, ignore_errors=True)
