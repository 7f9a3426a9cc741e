"""Which ``tf.distribute`` strategy trains the model, and which process is the chief.

``TrainConfig.strategy`` picks one of three, by a plain ``if`` (no registry):

- ``default``: TensorFlow's default strategy, one device, exactly the pre-distribution code path.
- ``mirrored``: ``MirroredStrategy``, synchronous data parallelism over local devices
  (``TrainConfig.devices``, or every GPU).
- ``multi_worker``: ``MultiWorkerMirroredStrategy``, the same over several machines. Each worker
  runs the same ``videoboost train`` command with its own ``TF_CONFIG`` (cluster addresses plus
  this worker's index); all take part in every step, only the chief writes (see
  :func:`is_chief`).

``TrainConfig.batch_size`` is the global batch; Keras ``fit`` splits each batch over the
replicas, and :mod:`models.gan` scales the per-replica losses so the summed gradients are the
global-batch gradients.
"""

from __future__ import annotations

import json
import os
from typing import Any

from videoboost.config import TrainConfig
from videoboost.errors import VideoBoostError

TF_CONFIG_EXAMPLE = json.dumps(
    {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}
)


def read_tf_config() -> dict[str, Any]:
    """``TF_CONFIG`` parsed and checked: a cluster, and this task's type and index in it.

    Raises:
        VideoBoostError: unset, not JSON, or this task is not in the cluster.
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        raise VideoBoostError(
            "strategy multi_worker needs the TF_CONFIG environment variable on every worker, "
            f"e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' (index 1 on the second worker)"
        )
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config["cluster"], tf_config["task"]
        kind, index = task["type"], int(task["index"])
        members = cluster[kind]
    except (ValueError, KeyError, TypeError) as exc:
        raise VideoBoostError(
            f"TF_CONFIG is not a valid cluster spec ({type(exc).__name__}: {exc}); "
            f"expected e.g. '{TF_CONFIG_EXAMPLE}'"
        ) from exc
    if not 0 <= index < len(members):
        raise VideoBoostError(
            f"TF_CONFIG task {kind} {index} is not in the cluster's {len(members)} {kind} "
            f"address(es) {members}; set task.index to 0..{len(members) - 1}"
        )
    return tf_config


def is_chief(cfg: TrainConfig) -> bool:
    """Whether this process writes checkpoints, sample images and the MLflow run.

    Always true for single-process strategies. Multi-worker: the ``chief`` task, or worker 0
    when the cluster has no ``chief`` entry (TensorFlow's convention). The other workers train
    in lockstep but write only to a temporary folder.
    """
    if cfg.strategy != "multi_worker":
        return True
    tf_config = read_tf_config()
    kind, index = tf_config["task"]["type"], int(tf_config["task"]["index"])
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in tf_config["cluster"]


def worker_name(cfg: TrainConfig) -> str:
    """``worker-1`` etc. for multi-worker runs (names a non-chief's scratch folder), else ``local``."""
    if cfg.strategy != "multi_worker":
        return "local"
    task = read_tf_config()["task"]
    return f"{task['type']}-{int(task['index'])}"


def _check_devices(devices: tuple[str, ...]) -> list[str]:
    """The requested devices, each matched (type and index) against TF's logical devices."""
    import tensorflow as tf

    def key(name: str) -> tuple[str, int | None]:
        spec = tf.DeviceSpec.from_string(name)
        return (spec.device_type or "").upper(), spec.device_index

    visible = tf.config.list_logical_devices()
    known = {key(d.name) for d in visible}
    missing = [d for d in devices if key(d) not in known]
    if missing:
        raise VideoBoostError(
            f"strategy mirrored: device(s) {missing} not found; visible: "
            f"{[d.name for d in visible]}. Fix `devices` in the training config (e.g. "
            "['/gpu:0', '/gpu:1']) or leave it unset to use every GPU"
        )
    return list(devices)


def build_strategy(cfg: TrainConfig):
    """The ``tf.distribute.Strategy`` for ``cfg.strategy``.

    Call it before TensorFlow runs its first op: ``MultiWorkerMirroredStrategy`` configures the
    collective ops of the runtime, which is only possible at start-up.

    Raises:
        VideoBoostError: unknown devices, a bad ``TF_CONFIG``, or a multi-worker strategy asked
            for after TensorFlow started.
    """
    if cfg.strategy == "multi_worker":
        read_tf_config()  # a clear message before TensorFlow's own (and before importing it)
    import tensorflow as tf

    if cfg.strategy == "default":
        if cfg.devices:
            raise VideoBoostError(
                "`devices` is only used by strategy mirrored; set strategy: mirrored or drop it"
            )
        return tf.distribute.get_strategy()
    if cfg.strategy == "mirrored":
        devices = _check_devices(cfg.devices) if cfg.devices else None
        return tf.distribute.MirroredStrategy(devices=devices)
    if cfg.devices:
        raise VideoBoostError(
            "`devices` is not used by strategy multi_worker (each worker uses its local GPUs, "
            "else its CPU); drop it"
        )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as exc:
        raise VideoBoostError(
            f"cannot start MultiWorkerMirroredStrategy ({exc}); it must be created before "
            "TensorFlow runs anything, so start a fresh process per worker (`videoboost train`)"
        ) from exc
