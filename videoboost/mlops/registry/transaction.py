"""The registry write of a decision as a transaction: undo on error, refuse on a conflict.

The aliases are re-read right before they move and the move is refused
(:class:`~videoboost.errors.PromotionConflict`) if another promotion changed them meanwhile; a
failed write restores every tag and alias that was already written.
"""

from __future__ import annotations

from collections.abc import Callable

from videoboost.errors import PromotionConflict, StoreUnavailable, VideoBoostError
from videoboost.mlops import version_card
from videoboost.mlops.registry.client import _call, _client
from videoboost.mlops.registry.reads import _get_version, _model_tags, aliases
from videoboost.mlops.tracking import MODEL_NAME, with_store_retries


class _Undo:
    """Remembers the previous value of every tag and alias written, to restore them on error."""

    def __init__(self) -> None:
        self.client = _client()
        self.steps: list[Callable[[], None]] = []

    def version_tag(self, version: str, key: str, value: str) -> None:
        c = self.client
        old = _get_version(version).tags.get(key)
        _call(lambda: c.set_model_version_tag(MODEL_NAME, version, key, value), "tagging")
        if old is None:
            self.steps.append(lambda: c.delete_model_version_tag(MODEL_NAME, version, key))
        else:
            self.steps.append(lambda: c.set_model_version_tag(MODEL_NAME, version, key, old))

    def description(self, version: str, text: str) -> None:
        c = self.client
        old = _get_version(version).description or ""
        _call(
            lambda: c.update_model_version(MODEL_NAME, version, description=text),
            "describing the version",
        )
        self.steps.append(lambda: c.update_model_version(MODEL_NAME, version, description=old))

    def card(self, version: str, *, history: str, time: str, **sections: str) -> None:
        """Rewrite ``sections`` of the version's description and add a history line."""
        text = _get_version(version).description
        self.description(version, version_card.update(text, history=history, time=time, **sections))

    def model_tag(self, key: str, value: str) -> None:
        c = self.client
        old = _model_tags().get(key)
        _call(lambda: c.set_registered_model_tag(MODEL_NAME, key, value), "tagging the model")
        if old is None:
            self.steps.append(lambda: c.delete_registered_model_tag(MODEL_NAME, key))
        else:
            self.steps.append(lambda: c.set_registered_model_tag(MODEL_NAME, key, old))

    def alias(self, name: str, version: str | None, old: str | None) -> None:
        c = self.client
        if version is None:
            _call(lambda: c.delete_registered_model_alias(MODEL_NAME, name), "deleting an alias")
        else:
            _call(
                lambda: c.set_registered_model_alias(MODEL_NAME, name, version), "moving an alias"
            )
        if old is None:
            self.steps.append(lambda: c.delete_registered_model_alias(MODEL_NAME, name))
        else:
            self.steps.append(lambda: c.set_registered_model_alias(MODEL_NAME, name, old))

    def rollback(self) -> list[str]:
        """Undo in reverse order; returns what could not be undone.

        Stops at the first undo that fails (the store is down): the registry is then left in
        a state the forward writes already passed through, never a mix of old and new that
        no promotion would write. Every such state keeps a champion no worse than before, and
        the next ``promote`` completes or repeats the decision.
        """
        for done, step in enumerate(reversed(self.steps)):
            try:
                with_store_retries(step, "restoring the registry")
            except Exception as exc:
                left = len(self.steps) - done
                return [f"{exc} ({left} write(s) of this decision are still in place)"]
        return []


def _check_unchanged(expected: dict[str, str | None]) -> None:
    now = aliases()
    changed = {a: (v, now.get(a)) for a, v in expected.items() if now.get(a) != v}
    if changed:
        what = "; ".join(
            f"{a}: {old or 'unset'} -> {new or 'unset'}" for a, (old, new) in changed.items()
        )
        raise PromotionConflict(
            f"the registry changed while deciding ({what}), probably another promotion; "
            "nothing was changed, run the command again"
        )


def _transaction(write: Callable[[_Undo], None], moved: dict[str, str | None]) -> None:
    """Run ``write``; on any error restore what it wrote and re-raise.

    Afterwards, check that every alias in ``moved`` holds its new value (a concurrent writer
    between the re-read and the move would show here).
    """
    undo = _Undo()
    try:
        write(undo)
    except Exception as exc:
        failed = undo.rollback()
        extra = (
            f"; could not restore: {'; '.join(failed)}; the champion is unchanged or the "
            "candidate; once the store is back, run the same command again to finish"
            if failed
            else "; registry restored"
        )
        if isinstance(exc, VideoBoostError):
            exc.args = (f"{exc}{extra}",)
            raise
        raise StoreUnavailable(f"writing the decision failed: {exc}{extra}") from exc
    now = aliases()
    lost = {a: now.get(a) for a, v in moved.items() if now.get(a) != v}
    if lost:
        raise PromotionConflict(
            "another promotion moved aliases at the same time: "
            + ", ".join(f"{a} now -> {v or 'unset'}" for a, v in lost.items())
            + "; check the aliases in the MLflow UI and run promote again"
        )
