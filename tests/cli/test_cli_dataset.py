import json
import subprocess
import sys

from media import write_clip

CLI = [sys.executable, "-m", "videoboost.cli"]


def run(*args, **kw):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, **kw)


def test_build_prints_version_and_counts(tmp_path):
    clip = write_clip(tmp_path / "a.avi", n=24)
    out = tmp_path / "ds"
    res = run("dataset", "build", clip, "--out", out, "--min-side", "8")
    assert res.returncode == 0, res.stderr
    version = json.loads((out / "dataset.json").read_text())["version"]
    assert f"dataset {version} built" in res.stdout
    assert "validation passed" in res.stdout and "index.html" in res.stdout
    again = run("dataset", "build", clip, "--out", out, "--min-side", "8")
    assert f"dataset {version} unchanged" in again.stdout


def test_build_on_corrupt_input_fails_cleanly(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01 definitely not a video" * 50)
    res = run("dataset", "build", bad, "--out", tmp_path / "ds")
    assert res.returncode == 2
    assert "broken.mp4" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "ds").exists()


def test_skipped_inputs_are_named(tmp_path):
    clip = write_clip(tmp_path / "a.avi", n=24)
    empty = tmp_path / "zero.mp4"
    empty.write_bytes(b"")
    res = run("dataset", "build", clip, empty, "--out", tmp_path / "ds", "--min-side", "8")
    assert res.returncode == 0, res.stderr
    assert "SKIPPED" in res.stderr and "zero.mp4" in res.stderr and "empty" in res.stderr
