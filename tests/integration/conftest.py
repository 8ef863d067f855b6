"""Integration fixtures: the real LiveKit server, a real worker process, real recordings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from greffier.core.config import LiveKitSettings, Settings
from greffier.rtc import server as lk_server
from greffier.rtc.worker_process import WorkerProcess


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
def worker(livekit: LiveKitSettings, agent_name: str, tmp_path_factory) -> Iterator[WorkerProcess]:
    """``greffier worker`` with the default model, registered under a test agent name."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = WorkerProcess({"GREFFIER_AGENT__NAME": agent_name}, log_path=log)
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"the worker exited with {code}:\n{proc.tail()}"
