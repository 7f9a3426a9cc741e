"""What the worker learns while it runs, for the page at ``/ui``: the runtime ``auto`` chose,
and how far each video task has got.

One process serves the API and the page (the service runs one worker), so a module-level
record is shared by the video jobs (which write it) and the page's progress stream (which
reads it). Plain Python, no BentoML import.
"""

import threading
import time
from dataclasses import dataclass, field
from typing import Any

# Finished tasks are forgotten after this long; at most this many are kept.
KEEP_SECONDS = 3600.0
KEEP_TASKS = 256


@dataclass
class Worker:
    """What the service instance found at start-up (set by ``VideoBoost.__init__``)."""

    runtime: Any = None  # a videoboost.evaluation.runtime_select.Choice
    window: int = 0  # a video-tier model's k; 0 = single-frame
    scale: int | None = None


WORKER = Worker()


@dataclass
class Progress:
    """One video task: ``state`` is ``running``, ``done`` or ``failed``."""

    state: str = "running"
    frames: int = 0
    total: int = 0  # 0 when the container does not say
    changed: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "frames": self.frames, "total": self.total}


class TaskProgress:
    """Progress of the video tasks by BentoML task id; thread-safe (jobs run on threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Progress] = {}

    def start(self, task_id: str | None, total: int) -> None:
        if task_id:
            with self._lock:
                self._forget_old()
                self._tasks[task_id] = Progress(total=max(total, 0))

    def advance(self, task_id: str | None, frames: int) -> None:
        self._set(task_id, frames=frames)

    def finish(self, task_id: str | None, ok: bool) -> None:
        self._set(task_id, state="done" if ok else "failed")

    def get(self, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._tasks.get(task_id)
            return entry.as_dict() if entry is not None else None

    def _set(self, task_id: str | None, **values: Any) -> None:
        if not task_id:
            return
        with self._lock:
            entry = self._tasks.get(task_id)
            if entry is not None:
                for key, value in values.items():
                    setattr(entry, key, value)
                entry.changed = time.monotonic()

    def _forget_old(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self._tasks.items() if e.state != "running"]:
            if now - self._tasks[key].changed > KEEP_SECONDS:
                del self._tasks[key]
        while len(self._tasks) >= KEEP_TASKS:
            del self._tasks[next(iter(self._tasks))]


TASKS = TaskProgress()
