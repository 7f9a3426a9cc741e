"""Training core and its MLflow edge, on a tiny synthetic dataset (seconds of training)."""

import json
import re
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from videoboost.config import DEFAULT_PRETRAIN_EPOCHS, GeneratorConfig, TrainConfig
from videoboost.evaluation.compare import comparison_image
from videoboost.training.train import EPOCH_KEYS, train


@pytest.fixture
def dataset(train_dataset):
    return train_dataset  # the session's (tests/conftest.py)


def tiny(**kw) -> TrainConfig:
    base = dict(
        generator=GeneratorConfig(tier="fast", filters=16, scale=4),
        steps_per_epoch=25,
        pretrain_epochs=2,
        batch_size=8,
        crop=8,
        warmup_steps=5,
        val_frames=2,
        learning_rate=2e-3,
    )
    base.update(kw)
    return TrainConfig(**base)


class Interrupt(keras.callbacks.Callback):
    """Dies after a given epoch's checkpoint, as a killed process would."""

    def __init__(self, after_epoch: int):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after_epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def pixel_run(train_dataset, tmp_path_factory):
    """Three pixel epochs, trained once for this module: the quality test and the warm-start
    test's parent (both only read it)."""
    work = tmp_path_factory.mktemp("pixel-run")
    return work, train(train_dataset, tiny(pretrain_epochs=3), work, progress=False)


def test_pixel_training_beats_bicubic(pixel_run):
    tmp_path, result = pixel_run
    gains = [h["val_psnr_gain"] for h in result.history]
    assert result.final["val_psnr_gain"] > 0.1, gains
    assert result.history[-1]["val_psnr"] > result.history[0]["val_psnr"] - 0.05
    assert set(EPOCH_KEYS) <= set(result.history[0])
    samples = sorted((tmp_path / "samples").glob("epoch_*.png"))
    assert [p.name for p in samples] == ["epoch_001.png", "epoch_002.png", "epoch_003.png"]
    # Without a budget, the epoch count ends it.
    assert result.ended_by == "the epoch count (pretrain_epochs 3)"


class FirstStep(keras.callbacks.Callback):
    """Validation PSNR of the generator before its first step (epoch 0)."""

    def __init__(self, check):
        super().__init__()
        self.check = check

    def on_train_begin(self, logs=None):
        self.psnr = self.check.score(self.model.generator)["val_psnr"]


def _check(dataset):
    from videoboost.data.shards import load_frames
    from videoboost.training.train import WholeFrameValidation

    frames, _ = load_frames(dataset, "val", limit=2)
    return WholeFrameValidation(frames, 4)


def test_training_is_deterministic_and_a_cold_start_is_bicubic(dataset, tmp_path):
    check = _check(dataset)
    cfg = tiny(pretrain_epochs=1, steps_per_epoch=10)
    first_a, first_b = FirstStep(check), FirstStep(check)
    a = train(dataset, cfg, tmp_path / "a", callbacks=[first_a], progress=False)
    b = train(dataset, cfg, tmp_path / "b", callbacks=[first_b], progress=False)
    assert a.history == b.history
    for wa, wb in zip(a.generator.get_weights(), b.generator.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    # A fresh generator starts as bicubic upsampling (the warm-start test's control).
    assert first_a.psnr == pytest.approx(check.bic_psnr, abs=0.01)
    assert first_b.psnr == first_a.psnr


def test_resume_continues_from_checkpoint(dataset, tmp_path):
    cfg = tiny(pretrain_epochs=3, steps_per_epoch=10)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, cfg, tmp_path, callbacks=[Interrupt(2)], progress=False)
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] == 2 and len(state["history"]) == 2
    result = train(dataset, cfg, tmp_path, resume=True, progress=False)
    assert result.epochs_done == 3
    # The first two epochs are the interrupted run's, not retrained.
    assert result.history[:2] == state["history"]


def test_scale_mismatch_is_refused(dataset, tmp_path):
    from videoboost.errors import VideoBoostError

    with pytest.raises(VideoBoostError, match="x4"):
        train(dataset, tiny(generator=GeneratorConfig(scale=2, filters=4)), tmp_path)


def test_comparison_image_is_legible_at_one_to_one():
    """Rows of detail crops, 2x nearest-neighbour, under a header of labels tall enough to read."""
    from videoboost.evaluation.compare import GAP, LABEL_PX

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 255, (256, 384, 3), np.uint8)
    lr = hr[::4, ::4].copy()
    img = comparison_image(lr, hr, hr, crop=96)
    header = LABEL_PX + 10
    assert img.shape == (header + 3 * (GAP + 192), 4 * 192 + 3 * GAP, 3)
    # The header has dark text at least LABEL_PX - 6 pixels tall in every column.
    for col in range(4):
        x0 = col * (192 + GAP)
        ink = np.nonzero((img[:header, x0 : x0 + 192] < 100).all(axis=2).any(axis=1))[0]
        assert ink.size and ink.max() - ink.min() >= LABEL_PX - 6, col
    # Each crop is enlarged by pixel repetition, not smoothed: 2x2 blocks are uniform.
    row = img[header + GAP : header + GAP + 192, 3 * (192 + GAP) :]
    np.testing.assert_array_equal(row[0::2, 0::2], row[1::2, 1::2])
    # A frame with room for one crop only gives one row.
    small = comparison_image(lr[:24, :24], hr[:96, :96], hr[:96, :96], crop=96)
    assert small.shape[0] == header + GAP + 192


def test_mlflow_run_registry_round_trip_and_resume(dataset, clean_environ):
    import toys

    from videoboost.mlops.tracking import MODEL_NAME, load_generator, setup, train_run

    toys.fresh_store(clean_environ)  # an empty store, migrated once per process, not per test

    cfg = tiny(pretrain_epochs=2, steps_per_epoch=8)
    # First attempt dies after epoch 1; the MLflow run is left failed, nothing is registered.
    import videoboost.mlops.tracking as tracking

    original = tracking.make_epoch_logger

    def dying_logger(samples_dir):
        logger = original(samples_dir)
        outer = logger.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            outer(epoch, logs)
            raise KeyboardInterrupt

        logger.on_epoch_end = on_epoch_end
        return logger

    tracking.make_epoch_logger = dying_logger
    try:
        with pytest.raises(KeyboardInterrupt):
            train_run(dataset, cfg, progress=False)
    finally:
        tracking.make_epoch_logger = original
    setup()
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("videoboost").experiment_id])
    assert client.search_model_versions(f"name='{MODEL_NAME}'") == []

    result = train_run(None, None, resume_run_id=run.info.run_id, progress=False)
    assert result["run_id"] == run.info.run_id and result["version"] == "1"
    assert result["run_url"] is None  # a SQLite store has no web address (no server)
    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_psnr")]
    assert steps == [1, 2]
    for key in ("g_loss", "pixel_loss", "val_psnr_bicubic", "val_psnr_gain", "phase"):
        assert client.get_metric_history(run.info.run_id, key), key
    # A pixel-only run has no discriminator numbers to chart (not a line of zeros).
    for key in ("d_loss", "adv_loss"):
        assert not client.get_metric_history(run.info.run_id, key), key
    assert {m.value for m in client.get_metric_history(run.info.run_id, "phase")} == {1.0}
    tags = finished.data.tags
    assert tags["dataset_version"] and tags["dataset_path"] == str(dataset) and tags["git_commit"]
    assert finished.data.params["generator.tier"] == "fast"
    # A readable name, and the classic training view of the MLflow UI (not the GenAI one).
    assert finished.info.run_name.startswith("fast-x4-" + tags["dataset_version"][:8])
    experiment = client.get_experiment(finished.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert finished.inputs.dataset_inputs, "dataset logged as an MLflow input"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"dataset", "samples", "config.json"} <= artifacts
    assert "dataset/validation.json" in {
        a.path for a in client.list_artifacts(run.info.run_id, "dataset")
    }

    # The image slider opens on step 0 (the untrained model = bicubic), then one per epoch.
    images = {a.path for a in client.list_artifacts(run.info.run_id, "images")}
    image_steps = {int(re.search(r"\+step\+(\d+)\+", p)[1]) for p in images if p.endswith(".png")}
    assert image_steps == {0, 1, 2}, images
    assert "samples/epoch_000.png" in {
        a.path for a in client.list_artifacts(run.info.run_id, "samples")
    }

    mv = client.get_model_version(MODEL_NAME, "1")
    assert mv.tags == {"scale": "4", "tier": "fast", "dataset_version": tags["dataset_version"]}
    card = mv.description
    assert "not evaluated yet" in card and f"`{tags['dataset_version']}`" in card
    assert f"{result['final']['val_psnr']:.2f}" in card and "| bicubic |" in card
    assert "cold start" in card and f"runs/{run.info.run_id}?workflowType=machine_learning)" in card
    record = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "evaluation.json", str(result["work_dir"]))
        ).read_text()
    )
    assert record["version"] == "1" and record["decisions"] == []
    # The record rounds to 5 decimals.
    assert record["validation"]["val_psnr_gain"] == pytest.approx(
        result["final"]["val_psnr_gain"], abs=1e-5
    )
    assert [str(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'")] == ["1"]

    # The registered generator reproduces the trained one exactly, at any frame size.
    generator, info = load_generator(f"models:/{MODEL_NAME}/1")
    assert info["scale"] == 4 and info["version"] == "1"
    ckpt = keras.models.clone_model(generator)
    ckpt.load_weights(result["work_dir"] / "checkpoint" / "generator.weights.h5")
    x = np.random.default_rng(0).uniform(0, 255, (1, 13, 21, 3)).astype(np.float32)
    out = np.asarray(generator(x))
    assert out.shape == (1, 52, 84, 3)
    np.testing.assert_allclose(out, np.asarray(ckpt(x)), atol=1e-4)

    # --init champion without a champion is a clear error; a warm start records its lineage.
    from videoboost.errors import ModelNotFound

    with pytest.raises(ModelNotFound, match="no champion yet"):
        train_run(dataset, cfg, progress=False, init="champion")
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    one_epoch = cfg.model_copy(update={"pretrain_epochs": 1})  # the lineage is the point here
    child = train_run(dataset, one_epoch, progress=False, init="champion")
    assert child["version"] == "2" and child["parent"] == f"models:/{MODEL_NAME}@champion"
    run_tags = client.get_run(child["run_id"]).data.tags
    assert run_tags["parent_version"] == "1"
    assert run_tags["parent_model_uri"] == f"models:/{MODEL_NAME}@champion"
    child_card = client.get_model_version(MODEL_NAME, "2").description
    assert f"warm start from `models:/{MODEL_NAME}@champion` (version 1)" in child_card
    assert "parent_version" not in client.get_model_version(MODEL_NAME, "2").tags


# The budget tests train without XLA: its compile (seconds of CPU per run and per resume) is
# not what they test; test_a_budgeted_run_after_a_deterministic_one_keeps_xla covers XLA.
def test_minutes_budget_stops_on_time_resumes_and_alone_trains_to_its_budget(
    dataset, tmp_path, capsys
):
    from videoboost.cli import build_parser, train_config_from_args

    # 0.04 min = 2.4 s of training, with far more epochs than fit in it: the clock ends the run
    # (pretrain_epochs 0: no epoch cap).
    cfg = tiny(minutes=0.04, pretrain_epochs=0, steps_per_epoch=2, jit_compile=False)
    result = train(dataset, cfg, tmp_path, progress=False)
    assert result.elapsed_s >= 2.4 and result.steps > 0
    assert not result.stopped_early  # the budget, not early stopping, ended it
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["extra"]["elapsed_s"] >= 2.4
    assert state["extra"]["crops_drawn"] == result.steps * cfg.batch_size
    # Resumed with the budget spent, it stops after the first step (the check runs per step).
    again = train(dataset, cfg, tmp_path, resume=True, progress=False)
    assert again.history[: len(result.history)] == result.history
    assert again.steps == result.steps + 1

    # `videoboost train --minutes N` alone sets no epoch count, so nothing caps the budget.
    args = build_parser().parse_args(["train", "--dataset", str(dataset), "--minutes", "0.3"])
    assert train_config_from_args(args, 4).pretrain_epochs is None
    # A longer budget of that kind resumes from the checkpoint and trains on until it too is
    # spent, past the default epoch count. 0.3 min leaves ~15 s: an epoch of 2 steps (with its
    # validation and checkpoint) took up to 2.2 s under the suite's load, and 6 s were too few.
    longer = tiny(minutes=0.3, pretrain_epochs=None, steps_per_epoch=2, jit_compile=False)
    capsys.readouterr()
    more = train(dataset, longer, tmp_path, resume=True, progress=True)
    assert more.steps > again.steps and more.epochs_done > again.epochs_done
    assert more.elapsed_s >= 18
    assert more.history[: len(again.history)] == again.history
    assert more.epochs_done > DEFAULT_PRETRAIN_EPOCHS  # the count that used to end such a run
    assert more.ended_by == "the time budget (0.3 min)"
    assert "training ended by the time budget (0.3 min)" in capsys.readouterr().out


def test_warm_start_begins_at_the_parents_quality(dataset, tmp_path, pixel_run):
    parent = pixel_run[1]  # read only: the child trains a copy of its weights
    check = _check(dataset)
    parent_psnr = check.score(parent.generator)["val_psnr"]
    assert parent_psnr > check.bic_psnr + 0.1  # the parent learned something

    # (A cold start begins at bicubic: test_training_is_deterministic_and_a_cold_start_...)
    warm = FirstStep(check)
    cfg = tiny(pretrain_epochs=1, steps_per_epoch=1, learning_rate=1e-7)
    train(dataset, cfg, tmp_path / "warm", init=parent.generator, callbacks=[warm],
          progress=False)  # fmt: skip
    assert warm.psnr == pytest.approx(parent_psnr, abs=1e-6)


def test_warm_start_from_another_architecture_is_refused(dataset, tmp_path):
    from models.networks import build_generator
    from videoboost.errors import VideoBoostError

    other = build_generator(GeneratorConfig(tier="quality", filters=8, blocks=1, scale=4))
    with pytest.raises(VideoBoostError, match="same tier"):
        train(dataset, tiny(), tmp_path, init=other, progress=False)


def test_adversarial_phase_logs_both_losses_and_a_gan_that_costs_quality_is_reverted(
    dataset, tmp_path
):
    scores = iter([30.0, 29.5])  # benchmark PSNR after the pixel phase, then after the GAN

    cfg = tiny(pretrain_epochs=1, gan_epochs=1, steps_per_epoch=5,
               discriminator={"filters": 4, "blocks": 2})  # fmt: skip
    result = train(dataset, cfg, tmp_path, scorer=lambda g: next(scores), progress=False)
    # One pixel epoch (no discriminator numbers), then one adversarial epoch with both losses.
    assert len(result.history) == 2
    assert result.history[0]["adv_loss"] == 0.0 and result.history[0]["d_loss"] == 0.0
    assert result.history[1]["adv_loss"] > 0 and result.history[1]["d_loss"] > 0
    assert result.gan_check == {
        "bench_psnr_pixel": 30.0, "bench_psnr_gan": 29.5, "kept": "pixel"
    }  # fmt: skip
    pixel = keras.models.clone_model(result.generator)
    pixel.load_weights(tmp_path / "pixel_phase.weights.h5")
    for a, b in zip(pixel.get_weights(), result.generator.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    # Within the 0.1 dB allowance the adversarial weights stay. No pixel epoch this time: the
    # guard's yardstick is then the fresh generator's score, and its saved weights.
    scores = iter([30.0, 29.95])
    gan_only = cfg.model_copy(update={"pretrain_epochs": 0})
    kept = train(dataset, gan_only, tmp_path / "b", scorer=lambda g: next(scores), progress=False)
    assert kept.gan_check["kept"] == "adversarial"
    assert len(kept.history) == 1 and kept.history[0]["adv_loss"] > 0
    pixel.load_weights(tmp_path / "b" / "pixel_phase.weights.h5")
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(pixel.get_weights(), kept.generator.get_weights(), strict=True)
    )


def test_a_budgeted_run_after_a_deterministic_one_keeps_xla(dataset, tmp_path):
    # Op determinism is process-wide: a worker that once trained deterministically must not
    # run every later budgeted run without XLA (Keras only warns, and steps get ~1.5x slower).
    import warnings

    from tensorflow.python.framework.config import is_op_determinism_enabled

    from videoboost.training.train import configure_tf

    configure_tf(tiny())
    assert is_op_determinism_enabled()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # A budget with an epoch cap the user set: the cap ends it, and the run says so.
        capped = train(dataset, tiny(minutes=1, pretrain_epochs=2, steps_per_epoch=5),
                       tmp_path, progress=False)  # fmt: skip
    assert capped.steps == 10
    assert not is_op_determinism_enabled()
    assert not [w for w in caught if "jit_compile" in str(w.message)]
    assert capped.epochs_done == 2 and capped.elapsed_s < 60
    assert capped.ended_by == "the epoch cap (pretrain_epochs 2)"


def test_mixed_bfloat16_trains_and_returns_a_float32_generator(dataset, tmp_path):
    import keras

    cfg = tiny(pretrain_epochs=1, steps_per_epoch=2, precision="mixed_bfloat16")
    result = train(dataset, cfg, tmp_path, progress=False)
    assert result.precision == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"  # put back for the process
    gen = result.generator
    assert gen.dtype_policy.name == "float32"
    assert {w.dtype for w in gen.weights} == {"float32"}
    out = gen(np.full((1, 8, 8, 3), 128.0, np.float32))
    assert out.dtype == "float32" and np.isfinite(np.asarray(out)).all()
    # The skip path stayed float32: a flat grey input comes back that grey, to a small residual.
    assert abs(float(np.asarray(out).mean()) - 128.0) < 8.0


def test_auto_precision_is_bfloat16_on_amx_hosts_only():
    from videoboost.host import detect_host
    from videoboost.training.train import training_precision

    def host(flags: str):
        return detect_host(f"model name\t: CPU\nflags\t\t: fpu avx2 {flags}\n")

    auto = tiny(precision="auto")
    assert training_precision(auto, host("avx512f avx512_bf16 amx_tile amx_bf16")) == (
        "mixed_bfloat16"
    )
    assert training_precision(auto, host("avx512f avx512_bf16")) == "float32"  # Zen 4
    assert training_precision(auto, host("")) == "float32"
    assert training_precision(tiny(precision="mixed_bfloat16"), host("")) == "mixed_bfloat16"
