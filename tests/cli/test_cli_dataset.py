"""`videoboost dataset build`: its exit codes and what it prints. In-process (``main``): the
command is under test, not the interpreter's start-up."""

import json

from media import write_clip

from videoboost.cli import main


def run(capsys, *args) -> tuple[int, str, str]:
    rc = main(list(map(str, args)))
    out, err = capsys.readouterr()
    return rc, out, err


def test_build_prints_version_and_counts(tmp_path, capsys):
    clip = write_clip(tmp_path / "a.avi", n=24)
    out = tmp_path / "ds"
    rc, stdout, stderr = run(capsys, "dataset", "build", clip, "--out", out, "--min-side", "8")
    assert rc == 0, stderr
    version = json.loads((out / "dataset.json").read_text())["version"]
    assert f"dataset {version} built" in stdout
    assert "validation passed" in stdout and "index.html" in stdout
    _, again, _ = run(capsys, "dataset", "build", clip, "--out", out, "--min-side", "8")
    assert f"dataset {version} unchanged" in again


def test_build_on_corrupt_input_fails_cleanly(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01 definitely not a video" * 50)
    rc, _, stderr = run(capsys, "dataset", "build", bad, "--out", tmp_path / "ds")
    assert rc == 2
    assert "broken.mp4" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "ds").exists()


def test_skipped_inputs_are_named(tmp_path, capsys):
    clip = write_clip(tmp_path / "a.avi", n=24)
    empty = tmp_path / "zero.mp4"
    empty.write_bytes(b"")
    rc, _, stderr = run(capsys, "dataset", "build", clip, empty, "--out", tmp_path / "ds",
                        "--min-side", "8")  # fmt: skip
    assert rc == 0, stderr
    assert "SKIPPED" in stderr and "zero.mp4" in stderr and "empty" in stderr
