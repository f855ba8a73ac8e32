"""The inference engine (``python -m inference serve``) in a child process, for the demo.

``with InferenceEngine(log_path=..., model_cache=...) as engine: engine.url`` starts it on a free port, waits for its
``inference: ready on http://HOST:PORT`` line and stops it (its whole process group) at the end.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

READY = re.compile(r"inference: ready on (http://\S+)")


class EngineFailed(RuntimeError):
    pass


class InferenceEngine:
    def __init__(self, *, log_path: Path, model_cache: Path, base: str = "tiny", start_timeout: float = 300.0) -> None:
        self.log_path, self.model_cache, self.base, self.start_timeout = log_path, model_cache, base, start_timeout
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> str:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")  # noqa: SIM115 - the child writes to it for its whole life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inference", "serve", "--base", self.base, "--host", "127.0.0.1", "--port", "0",
             "--model-cache", str(self.model_cache)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            match = READY.search(self.log_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1).rstrip("/")
                return self.url
            if self.proc.poll() is not None:
                raise EngineFailed(f"the inference engine exited (code {self.proc.returncode}); see {self.log_path}")
            time.sleep(0.2)
        self.stop()
        raise EngineFailed(f"the inference engine was not ready after {self.start_timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> InferenceEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
