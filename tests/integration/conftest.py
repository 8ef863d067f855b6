"""Integration fixtures: the real LiveKit server, a real worker process, real recordings."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from greffier.core.config import LiveKitSettings, Settings
from greffier.livekit import server as lk_server
from greffier.livekit.worker_process import WorkerProcess


@pytest.fixture(scope="session")
def livekit(settings: Settings) -> Iterator[LiveKitSettings]:
    """A LiveKit server on loopback: the one already running, or one started for the tests."""
    cfg = lk_server.ServerConfig(cache_dir=settings.cache_dir)
    started = lk_server.start(cfg)
    yield settings.livekit
    if started:
        lk_server.stop(cfg)


@pytest.fixture(scope="session")
def agent_name() -> str:
    return f"greffier-test-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def worker_data(tmp_path_factory) -> Path:
    """The data directory (transcript store, minutes) of the session's worker."""
    return tmp_path_factory.mktemp("worker-data")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(agent_name: str, data_dir: Path) -> dict[str, str]:
    """A test worker's settings: its own metrics port; rooms never refused for load (the
    machine is shared, so caption lag is not this worker's own: the load is still computed
    and exported, see test_metrics_live.py)."""
    return {"GREFFIER_AGENT__NAME": agent_name, "GREFFIER_DATA_DIR": str(data_dir),
            "GREFFIER_AGENT__LINGER_S": "3",
            "GREFFIER_AGENT__METRICS_PORT": str(free_port()),
            "GREFFIER_AGENT__LOAD_THRESHOLD": "inf"}


@pytest.fixture(scope="session")
def worker(livekit: LiveKitSettings, agent_name: str, worker_data: Path) -> Iterator[WorkerProcess]:
    """``greffier worker`` with the default model, registered under a test agent name;
    meetings end 3 s after the last participant left."""
    proc = WorkerProcess(worker_env(agent_name, worker_data), log_path=worker_data / "worker.log")
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"the worker exited with {code}:\n{proc.tail()}"
