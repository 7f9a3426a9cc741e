"""`videoboost upscale`: folders in and out, resume after an interruption, a bad item in a batch,
the --height note and the missing-model message; real tiny models, real files."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import toys
from media import texture
from tiny import audio_packets, make_clip

from videoboost.cli import main
from videoboost.video.pipeline import probe

SCALE = 4


def _write(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_folder_in_gives_folder_out_with_the_same_names(tmp_path, model_file, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _write(src / "a.png", texture(24, 40, seed=1))
    _write(src / "b.jpg", texture(20, 30, seed=2))
    make_clip(src / "clip.mp4", 10, size=(48, 32), rate=Fraction(30000, 1001))
    (src / "notes.txt").write_text("not media, skipped")
    out = tmp_path / "out"

    rc = main(
        ["upscale", str(src), "-o", str(out), "--model", str(model_file), "--segment-frames", "4"]
    )
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "clip.mp4"]
    assert _read(out / "a.png").shape == (24 * SCALE, 40 * SCALE, 3)
    assert _read(out / "b.png").shape == (20 * SCALE, 30 * SCALE, 3)
    info = probe(out / "clip.mp4", count_frames=True)
    # Three segments joined (4+4+2 frames, B-frames in the first two): rate stays exact.
    assert (info.frame_count, info.fps) == (10, Fraction(30000, 1001))
    assert (info.width, info.height) == (48 * SCALE, 32 * SCALE)
    assert audio_packets(out / "clip.mp4") == audio_packets(src / "clip.mp4")
    err = capsys.readouterr().err
    assert "clip.mp4 -> " in err and "done: 3 output(s)" in err
    # The video's line ends with its end-to-end rate: "..., 10 frames, 0.4 s, 25.0 frames/s".
    line = next(x for x in err.splitlines() if "clip.mp4 -> " in x)
    assert re.search(r"10 frames, [0-9.]+ s, [0-9.]+ frames/s\)$", line), line


def test_height_beyond_the_model_scale_says_so(tmp_path, model_file, capsys):
    src = _write(tmp_path / "a.png", texture(24, 40, seed=3))
    big = tmp_path / "big.png"
    rc = main(["upscale", str(src), "-o", str(big), "--model", str(model_file), "--height", "200"])
    assert rc == 0
    assert _read(tmp_path / "big.png").shape == (200, 334, 3)  # width even, aspect kept
    err = capsys.readouterr().err
    assert "note: model x4: 40x24 -> 160x96" in err
    assert "Lanczos" in err


def test_a_failing_item_is_reported_and_the_rest_continue(tmp_path, model_file, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _write(src / "good.png", texture(16, 16, seed=4))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but truncated")
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom not really a video")
    out = tmp_path / "out"
    missing = tmp_path / "missing.png"
    rc = main(
        ["upscale", str(src), str(missing), "-o", str(out), "--model", str(model_file), "--quiet"]
    )
    assert rc != 0
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # nothing half-written
    err = capsys.readouterr().err
    assert f"FAILED {src / 'broken.png'}" in err
    assert f"FAILED {src / 'broken.mp4'}" in err
    assert f"FAILED {tmp_path / 'missing.png'}: no such file" in err
    assert "3 of 4 input(s) failed" in err


def test_interrupted_video_resumes_from_the_last_finished_segment(tmp_path, model_file, capsys):
    from videoboost.batch.jobs import Job, model_identity, upscale_jobs
    from videoboost.config import UpscaleConfig
    from videoboost.inference.engine import Upscaler, keras_predict
    from videoboost.mlops.tracking import load_generator

    src = make_clip(tmp_path / "in.mp4", 12, size=(40, 24))
    dst = tmp_path / "out" / "in.mp4"
    generator, info = load_generator(str(model_file))
    predict = keras_predict(generator)
    calls = 0

    def interrupted(batch):  # the model, until Ctrl-C arrives during the third segment
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return predict(batch)

    # The settings `videoboost upscale IN -o OUT --model M --segment-frames 4` uses (batch 4:
    # one model call per 4-frame segment).
    upscaler = Upscaler(interrupted, info["scale"], UpscaleConfig().engine())
    with pytest.raises(KeyboardInterrupt):
        upscale_jobs([Job(src, dst, "video")], upscaler, model_id=model_identity(info),
                     segment_frames=4, progress=False)  # fmt: skip
    assert not dst.exists()  # never half-written
    assert (dst.parent / ".in.mp4.parts" / "manifest.json").is_file()

    rc = main(
        [
            "upscale",
            str(src),
            "-o",
            str(dst),
            "--model",
            str(model_file),
            "--segment-frames",
            "4",
            # The runtime of the interrupted run: segments of another runtime are not reused.
            "--runtime",
            "tf-f32",
            "--quiet",
        ]
    )
    assert rc == 0
    assert "resumed: 2 of 3 segments were already done" in capsys.readouterr().err
    assert probe(dst, count_frames=True).frame_count == 12
    assert not (dst.parent / ".in.mp4.parts").exists()


def test_missing_champion_says_how_to_train_or_point_at_a_model(tmp_path, clean_environ, capsys):
    toys.fresh_store(clean_environ)  # an empty registry
    src = _write(tmp_path / "a.png", texture(16, 16))
    rc = main(["upscale", str(src), "-o", str(tmp_path / "a_x4.png")])
    assert rc == 4
    err = capsys.readouterr().err
    assert "no champion" in err and "videoboost train" in err and "--model" in err
    assert not (tmp_path / "a_x4.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scale", "2"], "upscales x4"),
        (["--tile", "4"], "--tile 4"),
        (["--contrast", "9"], "--contrast"),
    ],
)
def test_bad_options_fail_before_writing(tmp_path, model_file, capsys, args, message):
    src = _write(tmp_path / "a.png", texture(16, 16))
    rc = main(
        ["upscale", str(src), "-o", str(tmp_path / "o.png"), "--model", str(model_file), *args]
    )
    assert rc != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_two_inputs_with_one_output_name_are_refused(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _write(src / "a.png", texture(16, 16))
    _write(src / "a.jpg", texture(16, 16))
    rc = main(["upscale", str(src), "-o", str(tmp_path / "out")])  # fails before loading a model
    assert rc == 2
    assert "would both be written to" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_preset_choices_match_the_config():
    from typing import get_args

    from videoboost.batch.jobs import X264_PRESETS
    from videoboost.config import UpscaleConfig

    assert get_args(UpscaleConfig.model_fields["preset"].annotation) == X264_PRESETS
