"""Progress in a log is whole lines (a line per step), a tqdm bar only in a terminal."""

import io
import math
import re

from tiny import make_clip

from videoboost.progress import LineProgress, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_one_line_per_step():
    out = io.StringIO()
    for epoch in (1, 2):
        bar = progress_bar(total=24, desc=f"epoch {epoch}/2", unit="step", file=out)
        assert isinstance(bar, LineProgress)
        for _ in range(24):
            bar.update(1)
        bar.set_postfix(pixel="0.0123")
        bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2/2: 100% | 24/24 step [") and "pixel=0.0123" in lines[1]


def test_long_steps_report_within_the_step(monkeypatch):
    monkeypatch.setenv("VIDEOBOOST_PROGRESS_SECONDS", "0")  # a line per update
    out = io.StringIO()
    with progress_bar(total=4, desc="epoch 2/3", unit="step", file=out, leave=False) as bar:
        for _ in range(4):
            bar.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # leave=False: no closing line
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"epoch 2/3: {25 * i:3d}% | {i}/4 step [") and line.endswith("]")
        # What a test can wait for mid-epoch, as it did with tqdm's "epoch 2/3: ...| 3/24".
        assert re.match(r"epoch 2/3:[^\r\n]*\|\s*([1-9]\d*)/4", line)


def test_iterable_unknown_total_write_and_disabled():
    out = io.StringIO()
    bar = progress_bar(iter(range(3)), desc="clip.mp4", unit="frame", file=out, every=math.inf)
    assert list(bar) == [0, 1, 2]
    bar.write("a line of the caller's own")
    assert out.getvalue().splitlines()[0].startswith("clip.mp4: 3 frame [")
    assert out.getvalue().splitlines()[1] == "a line of the caller's own"
    quiet = io.StringIO()
    bar = progress_bar(total=5, file=quiet, enabled=False)
    bar.update(5)
    bar.close()
    assert quiet.getvalue() == ""


def test_a_terminal_gets_tqdm():
    from tqdm import tqdm

    bar = progress_bar(total=3, desc="x", file=Terminal())
    assert isinstance(bar, tqdm)
    bar.close()


def test_batch_upscale_in_a_log_prints_lines_per_segment_and_file(tmp_path, model_file, capsys):
    from videoboost.batch.jobs import Job, model_identity, upscale_jobs
    from videoboost.config import UpscaleConfig
    from videoboost.inference.engine import Upscaler, keras_predict
    from videoboost.mlops.tracking import load_generator

    src = make_clip(tmp_path / "in.mp4", 12, size=(40, 24))
    generator, info = load_generator(str(model_file))
    upscaler = Upscaler(keras_predict(generator), info["scale"], UpscaleConfig().engine())
    outcomes = upscale_jobs([Job(src, tmp_path / "out" / "in.mp4", "video")], upscaler,
                            model_id=model_identity(info), segment_frames=4, progress=True)  # fmt: skip
    assert outcomes[0].ok
    err = capsys.readouterr().err  # captured: not a terminal
    assert "\r" not in err
    lines = err.splitlines()
    assert [ln for ln in lines if ln.startswith("in.mp4: ")] == [
        f"in.mp4: {n}/12 frames" for n in (4, 8, 12)
    ]
    assert any(ln.startswith(f"{src} -> ") for ln in lines)
    assert lines[-1].startswith("upscale: 100% | 12/12 frame [")
