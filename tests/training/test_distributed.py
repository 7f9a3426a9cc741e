"""Training under tf.distribute: config, strategy errors, and real mirrored / multi-worker runs.

The runs happen in fresh processes (``tests/dist_train.py``): two logical CPU devices and the
multi-worker runtime must be set up before TensorFlow runs its first op.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from videoboost.config import TrainConfig, flatten
from videoboost.errors import VideoBoostError
from videoboost.training.distribute import build_strategy, is_chief, read_tf_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parents[1] / "dist_train.py"
# Mirrored and one-device runs differ only in the order floating-point sums are taken (replica
# gradients added after each replica's own reduction); measured difference here ~1e-7 relative.
LOSS_RTOL = 1e-4


@pytest.fixture(scope="module")
def dataset(train_dataset):
    return train_dataset  # the session's (tests/conftest.py)


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    env.pop("TF_CONFIG", None)
    return {**env, **extra}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_default_strategy_is_the_default_and_logged():
    cfg = TrainConfig()
    assert cfg.strategy == "default" and cfg.devices is None
    params = flatten(TrainConfig(strategy="mirrored", devices=("/gpu:0", "/gpu:1")))
    assert params["strategy"] == "mirrored" and params["devices"] == ("/gpu:0", "/gpu:1")
    with pytest.raises(ValueError, match="strategy"):
        TrainConfig(strategy="parameter_server")


def test_multi_worker_needs_a_valid_tf_config(monkeypatch):
    cfg = TrainConfig(strategy="multi_worker")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(VideoBoostError, match="needs the TF_CONFIG environment variable"):
        build_strategy(cfg)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(VideoBoostError, match="TF_CONFIG is not a valid cluster spec"):
        read_tf_config()
    cluster = {"worker": ["a:1", "b:1"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}}))  # fmt: skip
    with pytest.raises(VideoBoostError, match=r"task worker 2 is not in .* set task.index to 0..1"):
        is_chief(cfg)


@pytest.mark.parametrize(
    ("cluster", "task", "chief"),
    [
        ({"worker": ["a:1", "b:1"]}, ("worker", 0), True),
        ({"worker": ["a:1", "b:1"]}, ("worker", 1), False),
        ({"chief": ["c:1"], "worker": ["a:1"]}, ("chief", 0), True),
        ({"chief": ["c:1"], "worker": ["a:1"]}, ("worker", 0), False),
    ],
)
def test_only_the_chief_writes(monkeypatch, cluster, task, chief):
    tf_config = {"cluster": cluster, "task": {"type": task[0], "index": task[1]}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief(TrainConfig(strategy="multi_worker")) is chief
    # TF_CONFIG means nothing to single-process strategies: they always write.
    assert is_chief(TrainConfig(strategy="mirrored")) is True


def test_unknown_device_is_a_clear_error():
    with pytest.raises(VideoBoostError, match=r"device\(s\) \['/gpu:7'\] not found; visible"):
        build_strategy(TrainConfig(strategy="mirrored", devices=("/gpu:7",)))
    with pytest.raises(VideoBoostError, match="only used by strategy mirrored"):
        build_strategy(TrainConfig(devices=("/cpu:0",)))


@pytest.mark.slow
def test_mirrored_on_two_devices_matches_one_device(dataset, tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "compare", str(dataset), str(tmp_path / "work"), str(out)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(out.read_text())
    one, mirrored = runs["default"], runs["mirrored"]
    assert runs["logical_cpus"] == 2
    assert (one["replicas"], mirrored["replicas"]) == (1, 2)
    # 2 pixel epochs, then 1 adversarial epoch (D and the adversarial G term both active).
    assert len(one["history"]) == len(mirrored["history"]) == 3
    assert mirrored["history"][2]["adv_loss"] > 0 and mirrored["history"][2]["d_loss"] > 0
    assert mirrored["history"][0]["d_loss"] == 0.0
    for a, b in zip(one["history"], mirrored["history"], strict=True):
        for key in ("g_loss", "pixel_loss", "adv_loss", "d_loss"):
            assert b[key] == pytest.approx(a[key], rel=LOSS_RTOL, abs=1e-7), key
        assert b["val_psnr"] == pytest.approx(a["val_psnr"], abs=0.01)
    for wa, wb in zip(one["weights"], mirrored["weights"], strict=True):
        np.testing.assert_allclose(wb, wa, rtol=1e-3, atol=1e-5)
    # It learned: lower L1 than the fresh (bicubic) generator on the same patches, above bicubic
    # on whole validation frames.
    assert mirrored["l1_after"] < mirrored["l1_before"] - 1e-4
    assert mirrored["history"][-1]["val_psnr_gain"] > 0
    assert Path(mirrored["checkpoint"], "state.json").is_file()
    assert (
        "batch_size 7 is the global batch and must split evenly over the 2 replicas"
        in (runs["odd_batch_error"])
    )


@pytest.mark.slow
def test_multi_worker_two_local_processes(dataset, tmp_path, clean_environ):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        out = tmp_path / f"worker{index}.json"
        args = [sys.executable, str(SCRIPT), "worker", str(dataset), str(tmp_path), str(out)]
        log = open(tmp_path / f"worker{index}.log", "w")  # noqa: SIM115  closed below
        procs.append((subprocess.Popen(args, env=_env(TF_CONFIG=tf_config), stdout=log,
                                       stderr=subprocess.STDOUT), log, out))  # fmt: skip
    try:
        for proc, _, _ in procs:
            proc.wait(timeout=300)
    finally:
        for proc, log, _ in procs:
            if proc.poll() is None:
                proc.kill()
            log.close()
    for index, (proc, _, _) in enumerate(procs):
        log = (tmp_path / f"worker{index}.log").read_text()
        assert proc.returncode == 0, f"worker {index}:\n{log[-3000:]}"
    chief, other = (json.loads(out.read_text()) for _, _, out in procs)

    # Both trained the same steps in lockstep: identical epoch losses.
    assert len(chief["history"]) == 2 and chief["history"] == other["history"]
    # ...and learned: the second epoch's pixel loss is below the first's.
    assert chief["history"][1]["pixel_loss"] < chief["history"][0]["pixel_loss"]
    # Only the chief wrote: one MLflow run, one run folder with the checkpoint.
    assert chief["run_id"] and other["run_id"] is None and other["work_dir"] is None
    import mlflow

    from videoboost.mlops.tracking import setup

    setup()
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("videoboost").experiment_id])
    assert [r.info.run_id for r in runs] == [chief["run_id"]]
    params = runs[0].data.params
    assert params["strategy"] == "multi_worker" and params["replicas"] == "2"
    assert sorted(p.name for p in (clean_environ / "runs").iterdir()) == [chief["run_id"]]
    assert (Path(chief["work_dir"]) / "checkpoint" / "state.json").is_file()
