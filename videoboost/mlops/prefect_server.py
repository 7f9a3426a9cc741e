"""The Prefect API a job talks to: the user's server, or one the job starts and stops itself.

Without ``PREFECT_API_URL`` every Prefect client starts a temporary ("ephemeral") server and
gives it ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (default 20) to answer; on two
busy cores that ran out and ``videoboost run`` died with a 45-line traceback. Here the job
starts ``prefect server start`` on 127.0.0.1 on a free port itself, waits for its health
endpoint for as long as that same setting says (default 300 s, from
:func:`videoboost.state.configure_environment`), points ``PREFECT_API_URL`` at it (child
processes inherit it, so they share the one server), and stops it on the way out: on
success, on error, on Ctrl-C, and (Linux) when the job is killed. The database is the same ``$PREFECT_HOME/prefect.db`` the temporary server used, so
``prefect server start`` afterwards shows every run in the UI.

Plain Python: Prefect runs in the child process; this module imports it only to flush the
logs and events the job has buffered before the server goes away.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from videoboost.errors import PrefectUnavailable, VideoBoostError
from videoboost.state import PREFECT_STARTUP_TIMEOUT

TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_TIMEOUT = float(PREFECT_STARTUP_TIMEOUT)
LOG_NAME = "server.log"  # in $PREFECT_HOME, overwritten by each job
# Run links ("View at ...") point where `prefect server start --host 127.0.0.1` serves the UI
# later, over the same database: the job's own server has no UI and is gone when it ends.
LATER_UI_URL = "http://127.0.0.1:4200"


def startup_timeout() -> float:
    """Seconds to wait for a server to answer: ``$PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``
    when set to a positive number, else :data:`STARTUP_TIMEOUT`."""
    try:
        value = float(os.environ.get(TIMEOUT_SETTING, ""))
    except ValueError:
        return STARTUP_TIMEOUT
    return value if value > 0 else STARTUP_TIMEOUT


def healthy(api_url: str, timeout: float = 5.0) -> bool:
    """Whether ``GET {api_url}/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, ValueError):  # URLError, refused, reset, timeout; a malformed URL
        return False


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parent_death_signal():
    """Linux: a function for ``preexec_fn`` that makes the child get SIGTERM when the job
    dies, even by SIGKILL (no orphaned server). Looked up here, in the parent: the child
    between fork and exec should only call it (loading a library there can deadlock)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class LocalServer:
    """``prefect server start`` on 127.0.0.1:``port`` with its output in ``log``."""

    def __init__(self, home: Path, port: int | None = None):
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log = home / LOG_NAME
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float) -> None:
        """Start the server and wait until it is healthy.

        Raises:
            PrefectUnavailable: it exited, or did not answer within ``timeout`` seconds (it is
                stopped then).
        """
        env = {
            **os.environ,
            # What Prefect's temporary server runs, no more: the API, the task-run recorder and
            # the event services. Not the UI, nor the loops a long-lived server needs (each
            # polls the database, all job long).
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        }
        env.pop("PREFECT_API_URL", None)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "prefect", "server", "start"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*cmd, "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the job, which stops the server
                preexec_fn=_parent_death_signal(),
            )
        say(f"prefect: starting a server for this job at {self.api_url} (log: {self.log})")
        started = time.monotonic()
        deadline = started + timeout
        while not healthy(self.api_url, timeout=min(5.0, timeout)):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise PrefectUnavailable(
                    f"the Prefect server for this job exited with code {code} before it "
                    f"answered ({_tail(self.log) or 'no output'}); see {self.log}, or point "
                    "PREFECT_API_URL at a running server (`prefect server start --host "
                    "127.0.0.1`)"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise PrefectUnavailable(
                    f"the Prefect server for this job ({self.api_url}) did not answer within "
                    f"{timeout:g} s "
                    f"(a busy machine?); raise {TIMEOUT_SETTING} (now {timeout:g}), or start "
                    "one yourself (`prefect server start --host 127.0.0.1`) and set "
                    f"PREFECT_API_URL; server log: {self.log}"
                )
            time.sleep(0.5)
        say(f"prefect: server ready after {time.monotonic() - started:.0f} s")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 15 s); safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _flush_prefect() -> None:
    """Send the logs and events Prefect buffered to the server before it stops; otherwise
    they retry against a dead server at interpreter exit (as ``prefect_test_harness`` does)."""
    if "prefect" not in sys.modules:
        return
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain():
        for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    with contextlib.suppress(Exception):
        run_coro_as_sync(drain())


class _NoTraceback(logging.Formatter):
    """Formats as ``inner`` does, without the traceback of a :class:`VideoBoostError`."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, VideoBoostError):
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info = record.exc_text = None  # for this handler only: restored below
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def console_without_tracebacks() -> None:
    """Prefect's console: no traceback for VideoBoost's own errors (imports Prefect).

    Prefect logs every failed task and flow with its traceback, so one unreadable input
    printed three tracebacks (task, subflow, flow) before the CLI's one-line message. Their
    message stays (``Task run failed with exception: SourceError('...')``); tracebacks of
    anything else (bugs) still print, and the flow-run logs on the server keep them all.
    """
    import prefect.main  # noqa: F401  (where Prefect sets up its logging)
    from prefect.logging.handlers import PrefectConsoleHandler

    for logger in (logging.getLogger(), logging.getLogger("prefect")):
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler) and not isinstance(
                handler.formatter, _NoTraceback
            ):
                handler.setFormatter(_NoTraceback(handler.formatter or logging.Formatter()))


@contextlib.contextmanager
def prefect_api(home: Path | None = None, timeout: float | None = None) -> Iterator[str]:
    """A Prefect API URL to run flows against, for the duration of the block.

    With ``PREFECT_API_URL`` set, that server must answer (within ``timeout``); otherwise a
    server is started for the block and stopped after it. Call it before Prefect is imported:
    Prefect reads ``PREFECT_API_URL`` once, at import.

    Args:
        home: where the server's log goes (default ``$PREFECT_HOME``).
        timeout: seconds to wait for the server (default :func:`startup_timeout`).

    Raises:
        PrefectUnavailable: the given server does not answer, or ours did not start.
    """
    timeout = timeout or startup_timeout()
    given = os.environ.get("PREFECT_API_URL")
    if given:
        if not healthy(given, timeout=min(timeout, 10.0)):
            raise PrefectUnavailable(
                f"the Prefect API at {given} (PREFECT_API_URL) does not answer; start that "
                "server, or unset PREFECT_API_URL and this job starts its own"
            )
        yield given
        return
    home = Path(home or os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    server = LocalServer(home)
    ui_given = "PREFECT_UI_URL" in os.environ
    try:
        with contextlib.ExitStack() as stack:
            server.start(timeout)
            os.environ["PREFECT_API_URL"] = server.api_url
            os.environ.setdefault("PREFECT_UI_URL", LATER_UI_URL)
            if "prefect.settings" in sys.modules:  # imported already: env is read at import
                from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

                updates = {PREFECT_API_URL: server.api_url}
                updates[PREFECT_UI_URL] = os.environ["PREFECT_UI_URL"]
                stack.enter_context(temporary_settings(updates=updates))
            try:
                yield server.api_url
            finally:
                if server.running:
                    _flush_prefect()
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        if not ui_given:
            os.environ.pop("PREFECT_UI_URL", None)
        server.stop()
