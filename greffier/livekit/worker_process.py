"""Run ``greffier worker`` as a child process (demo, tests, benchmarks).

The worker prints :data:`~greffier.subtitles.protocol.READY_LINE` on stderr once it is
registered with the server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from greffier.core.errors import GreffierError
from greffier.subtitles.protocol import READY_LINE


class WorkerProcess:
    """A worker subprocess with its stderr kept (the last lines) for diagnostics."""

    def __init__(self, env: dict[str, str] | None = None, *, log_path: Path | None = None):
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        # No fixed-port metrics endpoint unless asked: harness workers may run side by side.
        self.env.setdefault("GREFFIER_AGENT__METRICS_PORT", "0")
        # Nor refusal of rooms for load unless asked: demos and benchmarks dispatch every room
        # to this one worker (the load is still computed and exported).
        self.env.setdefault("GREFFIER_AGENT__LOAD_THRESHOLD", "inf")
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.lines: deque[str] = deque(maxlen=400)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 120.0) -> WorkerProcess:
        """Start and wait until registered; raises with the worker's last lines on failure."""
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "greffier", "worker"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.2):
                return self
            if self.proc.poll() is not None:
                break
        self.stop()
        raise GreffierError(
            "the worker did not register with the LiveKit server:\n" + self.tail(),
            hint="run `greffier worker` by hand to see why",
        )

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        log = self.log_path.open("a") if self.log_path else None
        try:
            for line in self.proc.stderr:
                self.lines.append(line.rstrip())
                if log:
                    log.write(line)
                    log.flush()
                if READY_LINE in line:
                    self._ready.set()
        finally:
            if log:
                log.close()

    def tail(self, n: int = 40) -> str:
        return "\n".join(list(self.lines)[-n:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._reader is not None:
            self._reader.join(2)
        return self.proc.returncode

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
