"""Two short retrains against whatever MLflow and Prefect servers the environment names.

For looking at the UIs (and the README's screenshots), not for quality: the bundled corpus, a
minute of fast-tier training each, a 4-frame held-out benchmark, no bento. The second retrain
warm-starts from the first one's champion, so its version page compares against a champion.

    MLFLOW_TRACKING_URI=http://127.0.0.1:57231 PREFECT_API_URL=http://127.0.0.1:57232/api \\
        .venv/bin/python scripts/ui_demo.py [MINUTES]

Prints one JSON line per retrain: flow run id, MLflow run id, experiment id, version.
"""

import json
import sys


def main() -> None:
    from flows.params import RetrainParams
    from flows.retrain import retrain
    from videoboost.config import DatasetConfig, GeneratorConfig, SamplingConfig, TrainConfig
    from videoboost.data.sources import TRAIN_SOURCES
    from videoboost.state import home

    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    params = RetrainParams(
        sources=[str(p) for p in TRAIN_SOURCES],
        dataset_dir=str(home() / "datasets" / "demo"),
        # 12 frames a clip and every photo: a dataset built in seconds, not the main job's.
        dataset=DatasetConfig(
            sampling=SamplingConfig(every=10, max_frames=12, dedupe_threshold=1.0),
            val_fraction=0.1,
        ),
        train=TrainConfig(
            generator=GeneratorConfig(tier="fast", scale=4),
            steps_per_epoch=60,
            pretrain_epochs=0,
            gan_epochs=0,
            minutes=minutes,
            val_frames=4,
        ),
        benchmark_frames=4,
        package=False,
    )
    for _ in range(2):
        state = retrain(params, return_state=True)
        result = state.result()
        print(
            json.dumps(
                {
                    "flow_run": str(state.state_details.flow_run_id),
                    "run_id": result["run"]["run_id"],
                    "pages": result["run"]["pages"],
                    "version": result["run"]["version"],
                    "decision": result["promotion"]["decision"],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
