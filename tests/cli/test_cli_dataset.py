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


def test_corpus_build_caps_each_clip_and_honours_the_manifests_prescale(tmp_path, capsys):
    from videoboost.cli import build_parser
    from videoboost.cli.main import CORPUS_CLIP_FRAMES, dataset_config_from_args
    from videoboost.data.corpus import file_sha256

    def cap(*argv):
        args = build_parser().parse_args(argv)
        return dataset_config_from_args(args).sampling.max_frames_per_clip

    assert cap("corpus", "build", "--out", "x") == CORPUS_CLIP_FRAMES
    assert cap("corpus", "build", "--out", "x", "--max-frames-per-clip", "0") is None
    assert cap("dataset", "build", "a.mp4", "--out", "x") is None  # unchanged there

    clip = write_clip(tmp_path / "a.avi", n=40)
    entry = {"file": "a.avi", "kind": "video", "package": "p", "package_version": "1",
             "source_path": "a.avi", "licence": "CC0", "sha256": file_sha256(clip)}  # fmt: skip
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps({"name": "t", "version": 1, "files": [{**entry, "prescale": 0.5}]})
    )
    out = tmp_path / "ds"
    rc, stdout, stderr = run(capsys, "corpus", "build", "--manifest", manifest, "--out", out,
                             "--min-side", "8", "--max-frames-per-clip", "10", "--profile", "clean")  # fmt: skip
    assert rc == 0, stderr
    # Frames 2, 6, ..., 38: one from the middle of each tenth; the picks miss the split's gap.
    assert "10 frames (split: time, prescaled x0.5)" in stdout
    info = json.loads((out / "dataset.json").read_text())
    assert info["config"]["prescale"] == {entry["sha256"]: 0.5}
    rows = (out / "manifest.csv").read_text().splitlines()
    assert len(rows) == 11 and all(",48,64," in r for r in rows[1:])  # HR 64x48 of 128x96
