"""The promotion gate: evaluation results in the MLflow registry, ``champion`` aliases, rollback.

MLflow at the edge, like :mod:`videoboost.mlops.tracking` (MLflow is imported through it, lazily).
The scores come from :mod:`videoboost.evaluation.benchmark`.

The package, bottom up: ``client`` (store access, retries), ``reads`` (versions, aliases, the
champion history), ``decision`` (the rules, pure: scores in, a decision out), ``scoring``
(benchmark scores of a version, logged), ``transaction`` (alias moves, undo, conflicts) and
``promotion`` (plan, apply, promote, rollback). Import from here.

Aliases of ``videoboost-generator``:

* ``champion-x{s}``: the champion of scale ``s``, one per scale; ``champion``: the champion of
  ``PromoteConfig.default_scale`` (it always equals ``champion-x{default}``). What users get.
* ``challenger``: the last candidate that passed the bicubic floor but lost to the champion.

Registered-model tag ``champion_history``: ``{"4": ["1", "3"], ...}``, the previous champions
of each scale, newest last; :func:`promote` pushes, :func:`rollback` pops.

A version carries few tags: ``tier``, ``scale``, ``dataset_version`` (from registration),
``decision`` (the last decision about it: ``promoted``, ``rejected``, ``rolled_back``,
``restored``) and ``bench_psnr_gain`` (its held-out gain over bicubic, read by the bento and the
service). Everything else is in its description, a Markdown card (:mod:`videoboost.mlops.version_card`)
rewritten in the same transaction as the aliases: the decision and its reason, the benchmark
table against bicubic and the champion, the training lineage, a dated status line and history.
Alias state is never copied into tags: the aliases themselves are the record. Each decision is
also appended to ``evaluation.json`` on the version's training run, next to the benchmark reports
(``benchmark/<bench>_v<N>.json``) and comparison images.

Safety: both models are evaluated before anything is written; the aliases are re-read right
before they move and the move is refused (:class:`~videoboost.errors.PromotionConflict`) if
another promotion changed them meanwhile; a failed write restores every tag and alias that was
already written, so an error leaves the registry as it was.
"""

from videoboost.mlops.registry.client import HISTORY_LIMIT as HISTORY_LIMIT
from videoboost.mlops.registry.client import HISTORY_TAG, VERSION_TAGS
from videoboost.mlops.registry.decision import Decision, champion_alias, decide
from videoboost.mlops.registry.promotion import apply, plan_promotion, promote, rollback
from videoboost.mlops.registry.reads import aliases, history, newest_version
from videoboost.mlops.registry.scoring import evaluate_and_log, evaluate_version, log_report

__all__ = [
    "HISTORY_TAG",
    "VERSION_TAGS",
    "Decision",
    "aliases",
    "apply",
    "champion_alias",
    "decide",
    "evaluate_and_log",
    "evaluate_version",
    "history",
    "log_report",
    "newest_version",
    "plan_promotion",
    "promote",
    "rollback",
]
