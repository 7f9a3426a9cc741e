"""bench/scaling.py's parsing, tables, tier picks and plot on made-up numbers (no training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scaling

TRACKS = ["clean", "h264_crf30", "video"]


def fake_row(candidate: str, setting: str, gain: float) -> dict:
    curve = []
    for m in (1, 3):
        gains = {t: gain * m / 3 for t in TRACKS}
        curve.append({"mark": m, "minutes": m, "steps": 10 * m, "gain": gains,
                      "gain_mean": gain * m / 3})  # fmt: skip
    curve[-1]["gain"]["h264_crf30"] -= 0.2
    return {"run": scaling.run_name(candidate, setting), "candidate": candidate,
            "setting": setting, "params": 20_000, "steps_per_s": 5.0, "curve": curve}  # fmt: skip


def test_candidates_parse_and_refuse_unknown_names():
    got = scaling.parse_candidates("fast-32x3, quality-48x4")
    assert (got["fast-32x3"].tier, got["fast-32x3"].filters, got["fast-32x3"].blocks) == (
        "fast",
        32,
        3,
    )
    assert (got["quality-48x4"].filters, got["quality-48x4"].blocks) == (48, 4)
    assert got["quality-48x4"].damage_code == 0
    coded = scaling.parse_candidates("quality-32x8-dc8")["quality-32x8-dc8"]
    assert (coded.tier, coded.filters, coded.blocks, coded.damage_code) == ("quality", 32, 8, 8)
    with pytest.raises(ValueError, match="candidate"):
        scaling.parse_candidates("span-48x4")


def test_study_axes_make_one_setting_per_combination():
    assert scaling.data_settings(None, None) == [("", {})]
    settings = scaling.data_settings([0.3, 0.6], scaling.parse_kernels("bicubic,bicubic+area"))
    assert len(settings) == 4
    assert settings[1] == ("clean 0.3, bicubic+area", {"clean_share": 0.3,
                                                       "kernels": ("bicubic", "area")})  # fmt: skip


def test_tables_picks_and_plot(tmp_path):
    rows = [fake_row("fast-32x3", "", 0.3), fake_row("fast-48x4", "", 0.4),
            fake_row("quality-32x8", "", 0.6), fake_row("fast-32x3", "clean 0.6", 0.35)]  # fmt: skip
    speed = {
        "fast-32x3": {"runtime_auto": "ov-int8", "fps_auto": 30.0, "fps_tf_f32": 10.0},
        "fast-48x4": {"runtime_auto": "ov-int8", "fps_auto": 29.0, "fps_tf_f32": 6.0},
        "quality-32x8": {"runtime_auto": "ov-f32", "fps_auto": 9.0, "fps_tf_f32": 4.0},
    }
    summary = scaling.summarise(rows, speed)
    assert summary[0]["gap_clean_coded"] == pytest.approx(0.2)
    picks = scaling.pick_tiers(summary, tolerance=0.05)
    # 29 fps is within 5 % of 30; 9 fps is under a third of 29, so the quality pick is 48x4.
    assert (picks["fast"], picks["quality"]) == ("fast-48x4", "fast-48x4")
    assert scaling.pick_tiers(summary, tolerance=0.2)["quality"] == "quality-32x8"
    tables = scaling.track_tables(rows, TRACKS, [1, 3])
    assert tables["clean"][0] == {"run": "fast-32x3", "1 min": "+0.100", "3 min": "+0.300"}
    assert set(tables) == {*TRACKS, "mean"}
    payload = {"rows": rows, "speed": speed, "tracks": TRACKS, "separate_runs": False,
               "date": "2026-01-01", "host": {"cpu": "Test CPU", "kind": "AVX2 only",
                                              "cores": 2}}  # fmt: skip
    png = tmp_path / "scaling.png"
    scaling.plot(payload, png)
    assert png.stat().st_size > 10_000


def test_merge_refuses_studies_that_do_not_compare(tmp_path):
    part = {"benchmark_version": "b1", "budgets_min": [5, 10], "separate_runs": False,
            "host": {"cpu": "cpu A"}, "datasets": {}, "threads": 1, "rows": []}  # fmt: skip
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(part))
    b.write_text(json.dumps({**part, "budgets_min": [5, 20]}))
    c.write_text(json.dumps({**part, "host": {"cpu": "cpu B"}}))
    args = scaling.parse_args(["--merge", f"{a},{b}"])
    with pytest.raises(SystemExit, match="budgets_min"):
        scaling.merge([a, b], args)
    with pytest.raises(SystemExit, match="different hosts"):
        scaling.merge([a, c], args)
    d = tmp_path / "d.json"
    d.write_text(json.dumps({**part, "init": "models/base/quality-x4.keras"}))
    with pytest.raises(SystemExit, match="init"):
        scaling.merge([a, d], args)
