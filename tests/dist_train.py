"""Training under tf.distribute in a fresh process (run by tests/training/test_distributed.py).

Logical devices and the multi-worker runtime can only be set up before TensorFlow runs its
first op, which a pytest process has long done; hence a script.

    python tests/dist_train.py compare DATASET WORK OUT.json
        two logical CPU devices; the same tiny run with strategy default, then mirrored over
        both devices; per-epoch losses, replica counts and final weights' checksum to OUT.json.
    TF_CONFIG=... python tests/dist_train.py worker DATASET WORK OUT.json
        one worker of a MultiWorkerMirroredStrategy run through ``train_run`` (MLflow store in
        VIDEOBOOST_HOME; WORK unused); its role, run id and history to OUT.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CPUS = ("/cpu:0", "/cpu:1")


def tiny_config(**kw):
    from videoboost.config import DiscriminatorConfig, GeneratorConfig, TrainConfig

    base = dict(
        generator=GeneratorConfig(tier="fast", filters=8, scale=4),
        discriminator=DiscriminatorConfig(filters=4, blocks=2),
        batch_size=8,
        crop=8,
        steps_per_epoch=12,
        pretrain_epochs=2,
        gan_epochs=1,
        warmup_steps=2,
        val_frames=1,
        learning_rate=2e-3,
        gan_learning_rate=1e-3,
        adv_weight=0.05,  # big enough that the adversarial term moves G visibly in a few steps
        threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def fixed_batch_l1(generator, dataset: str) -> float:
    """Pixel loss of ``generator`` on the first 8 whole training frames (the same every run)."""
    import numpy as np

    from models.losses import pixel_loss
    from videoboost.data.dataset import load_frames

    frames, _ = load_frames(dataset, "train")
    lr = np.stack([f[0] for f in frames[:8]]).astype("float32")
    hr = np.stack([f[1] for f in frames[:8]]).astype("float32")
    return float(pixel_loss(hr, generator(lr)))


def summary(result, dataset: str) -> dict:
    import numpy as np

    from models.networks import build_generator

    weights = result.generator.get_weights()
    return {
        "strategy": result.strategy,
        "replicas": result.replicas,
        "chief": result.chief,
        "history": result.history,
        "weights": [np.asarray(w).ravel()[:64].tolist() for w in weights],
        "checkpoint": str(result.checkpoint_dir) if result.checkpoint_dir else None,
        # A fresh generator is exactly bicubic (zero-initialised last layer), whatever the seed.
        "l1_before": fixed_batch_l1(build_generator(tiny_config().generator), dataset),
        "l1_after": fixed_batch_l1(result.generator, dataset),
    }


def compare(dataset: str, work: Path) -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    from videoboost.errors import VideoBoostError
    from videoboost.training.train import train

    runs = {}
    for name, cfg in (
        ("default", tiny_config()),
        ("mirrored", tiny_config(strategy="mirrored", devices=CPUS)),
    ):
        runs[name] = summary(train(dataset, cfg, work / name, progress=False), dataset)
    runs["logical_cpus"] = len(tf.config.list_logical_devices("CPU"))
    try:  # 7 does not split over 2 replicas
        train(dataset, tiny_config(strategy="mirrored", devices=CPUS, batch_size=7), work / "odd")
    except VideoBoostError as exc:
        runs["odd_batch_error"] = str(exc)
    return runs


def worker(dataset: str, work: Path) -> dict:
    """One worker of a multi-worker run through the MLflow edge (``VIDEOBOOST_HOME`` store)."""
    from videoboost.mlops.tracking import train_run

    # Pixel phase only: the adversarial step under a distribution strategy is the mirrored
    # test's (same strategy-generic code); here it would add a discriminator's tracing and two
    # benchmark scorings on the chief, half this test's time.
    cfg = tiny_config(strategy="multi_worker", pretrain_epochs=2, gan_epochs=0, steps_per_epoch=6)
    result = train_run(dataset, cfg, progress=False, register_model=False)
    return {
        "task": json.loads(os.environ["TF_CONFIG"])["task"],
        "run_id": result["run_id"],
        "history": result["history"],
        "work_dir": str(result["work_dir"]) if result["work_dir"] else None,
    }


if __name__ == "__main__":
    mode, dataset, work, out = sys.argv[1:5]
    result = {"compare": compare, "worker": worker}[mode](dataset, Path(work))
    Path(out).write_text(json.dumps(result, indent=1))
