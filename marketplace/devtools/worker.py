"""A real ``celery -A marketplace worker`` in a child process, for the demo and the end-to-end tests.

``with CeleryWorker(log_path=tmp / "worker.log", env=env) as worker: ...`` starts the worker, waits until it has
connected to its broker and says it is ready, and stops it at the end. The worker runs in its own process group,
so stopping it also ends anything it started. ``kill()`` is SIGKILL, as a crashed machine would be: no clean-up
and no acknowledgement, which is what the crash tests need.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What the worker logs (at INFO) once its consumer is connected: "celery@<host> ready."
READY_LINE = re.compile(rb"@\S+ ready\.$", re.MULTILINE)


class WorkerFailed(RuntimeError):
    """The worker exited, or did not become ready in time; the message ends with the tail of its log."""


class CeleryWorker:
    """One solo-pool worker consuming ``queues``, with ``env`` as its whole environment (default: this process's).

    Output goes to ``log_path`` (appended to, so a log shared across runs keeps its history). ``name`` is the
    worker's node name (``-n``); give each of several concurrent workers its own.
    """

    def __init__(
        self,
        *,
        log_path: Path | str,
        env: Mapping[str, str] | None = None,
        queues: str | Sequence[str] = ("default", "training"),
        name: str | None = None,
        start_timeout: float = 180.0,
    ) -> None:
        self.log_path = Path(log_path)
        self.env = dict(os.environ if env is None else env)
        self.queues = queues if isinstance(queues, str) else ",".join(queues)
        self.name = name
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0

    @property
    def command(self) -> list[str]:
        command = [sys.executable, "-m", "celery", "-A", "marketplace", "worker", "-Q", self.queues, "-c", "1",
                   "--pool", "solo", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        return command + (["-n", self.name] if self.name else [])

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, wait: bool = True) -> CeleryWorker:
        """Start the process; unless ``wait`` is false, return only once it is ready (or raise WorkerFailed)."""
        if self._process is not None:
            raise RuntimeError("this worker was already started; make a new CeleryWorker")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()/kill()
        self._log_start = self._log.tell()
        self._process = subprocess.Popen(
            self.command, cwd=PROJECT_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until this run's part of the log says the worker is ready. A worker that exits first, or takes
        longer than ``timeout`` seconds (default ``start_timeout``), is stopped and reported with its log tail."""
        limit = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self._ready():
                return
            if not self.running:
                self._close_log()
                code = self._process.returncode if self._process is not None else None
                raise WorkerFailed(f"the Celery worker exited at start (code {code}); {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.2)
        self.stop()
        raise WorkerFailed(f"the Celery worker was not ready after {limit:.0f} s; "
                           f"{self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a warm shutdown: the task in hand finishes or is handed back), then SIGKILL after ``timeout`` s."""
        if self.running:
            assert self._process is not None
            self._signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the worker's whole process group, as a crashed machine would: no clean-up, no acknowledgement."""
        if self.running:
            assert self._process is not None
            self._signal(signal.SIGKILL)
            self._process.wait(10)
        self._close_log()

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ready(self) -> bool:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                return READY_LINE.search(log.read()) is not None
        except OSError:
            return False

    def _signal(self, sig: signal.Signals) -> None:
        assert self._process is not None
        try:
            os.killpg(self._process.pid, sig)
        except ProcessLookupError:
            pass  # exited between the check and the signal

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
