"""The base generators shipped in ``models/base/``: each loads, is the file its card describes,
and still scores on the held-out benchmark what its card says."""

from __future__ import annotations

import pytest

SHIPPED = ("fast-x4", "quality-x4")
TRACKS = {"clean", "h264_crf23", "h264_crf30", "jpeg_q50", "video"}


def test_shipped_bases_load_and_their_card_scores_hold():
    import keras

    import models.networks  # noqa: F401  registers the custom layers
    from videoboost.training.base import BASE_DIR, file_sha256, read_card, render_card, score_base

    # One test for both, so the benchmark is degraded and encoded once (it is cached in the
    # test's state folder) and the two scorings share it.
    for stem in SHIPPED:
        path = BASE_DIR / f"{stem}.keras"
        card = read_card(path)
        assert card["file"] == path.name and card["sha256"] == file_sha256(path), stem
        assert path.stat().st_size < 5 * 2**20  # a few MB at most
        assert f"{card['tier']}-x{card['scale']}" == stem
        assert card["training"]["hours"] > 1 and card["training"]["stretches"], stem
        assert card["corpus"]["manifest_sha256"] and card["degradation"]["profile"] == "real"
        assert path.with_suffix(".md").read_text() == render_card(card)

        model = keras.models.load_model(path, compile=False)
        assert model.count_params() == card["parameters"]
        tracks, means = score_base(model)
        assert set(tracks) == set(card["benchmark"]["tracks"]) >= TRACKS, stem
        for track, scores in tracks.items():
            shipped = card["benchmark"]["tracks"][track]
            for key in ("bench_psnr", "bench_psnr_gain"):
                assert scores[key] == pytest.approx(shipped[key], abs=0.02), (stem, track, key)
        assert means["bench_psnr_gain_mean"] == pytest.approx(
            card["benchmark"]["bench_psnr_gain_mean"], abs=0.02
        )
