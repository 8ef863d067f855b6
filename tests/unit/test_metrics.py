"""Prometheus metrics, scraped and read with prometheus_client's own parser: the service's
``/metrics`` (operators only), the worker's endpoint, events that move the values, the worker's
load function, and the Grafana dashboard's queries naming only exported families."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from greffier.agents.load import (
    CPU_CAPACITY_STREAMS,
    LAG_BUDGET_S,
    QUEUE_WAIT_BUDGET_S,
    SERVER_TARGET_LOAD,
    current_load,
    default_capacity,
    reported_load,
    worker_load,
)
from greffier.asr.engine import InferenceEngine, RequestKind, Superseded
from greffier.asr.whisper import DecodeOptions
from greffier.core import metrics
from greffier.core.config import AgentSettings
from greffier.core.types import Hypothesis
from greffier.service.app import create_app
from tests.unit.test_service_api import client_for, make_settings

pytestmark = pytest.mark.unit

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"


def scrape(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def local_families() -> dict[str, Any]:
    body, _ = metrics.exposition()
    return scrape(body.decode())


def value(families: dict[str, Any], sample: str, **labels: str) -> float:
    """The sample's value (0 when absent, as Prometheus reads a counter not yet moved)."""
    for family in families.values():
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


# -- the service's /metrics -------------------------------------------------------------------


async def test_service_metrics_are_for_operators_and_count_requests(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    try:
        async with client_for(app, headers={}) as anonymous:
            assert (await anonymous.get("/metrics")).status_code == 401
        async with client_for(app, headers={"Authorization": "Bearer wrong-key"}) as wrong:
            assert (await wrong.get("/metrics")).status_code == 401
        async with client_for(app) as operator:
            before = scrape((await operator.get("/metrics")).text)
            assert (await operator.get("/health")).status_code == 200
            assert (await operator.get("/api/meetings/no-such-meeting")).status_code == 404
            response = await operator.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        after = scrape(response.text)
    finally:
        app.state.greffier.close()
    assert set(metrics.FAMILIES) - {"greffier_gpu_memory_used_bytes",
                                    "greffier_gpu_memory_total_bytes"} <= set(after)
    requests = "greffier_http_requests_total"
    health = {"method": "GET", "route": "/health", "status": "200"}
    assert value(after, requests, **health) == value(before, requests, **health) + 1
    # The route's template is the label, never the raw path (it holds ids and room names).
    routes = {s.labels["route"] for s in after["greffier_http_requests"].samples}
    assert "/api/meetings/{meeting_id}" in routes
    assert not any("no-such-meeting" in r for r in routes)


# -- the worker's side ------------------------------------------------------------------------


class SlowDecoder:
    """Decodes nothing, once the test opens its gate (requests queue behind it)."""

    multilingual = True

    def __init__(self) -> None:
        self.gate = threading.Event()

    def decode_batch(self, requests: Sequence[tuple[np.ndarray, DecodeOptions]]
                     ) -> list[Hypothesis]:
        self.gate.wait(5)
        return [Hypothesis(words=(), language="en", text="") for _ in requests]


def test_engine_events_move_the_worker_metrics() -> None:
    before = local_families()
    decoder = SlowDecoder()
    engine = InferenceEngine(decoder, interim_max_wait_s=0.05).start()
    audio = np.zeros(16000, np.float32)
    options = DecodeOptions(language="en", beam_size=1)
    try:
        blocker = engine.submit("metrics-a", RequestKind.FINAL, audio, options)
        stale = engine.submit("metrics-b", RequestKind.INTERIM, audio, options)
        final = engine.submit("metrics-c", RequestKind.FINAL, audio, options)
        threading.Event().wait(0.2)  # the interim outlives interim_max_wait_s in the queue
        decoder.gate.set()
        blocker.result(5)
        final.result(5)
        with pytest.raises(Superseded):
            stale.result(5)
    finally:
        engine.close()
    after = local_families()
    count = "greffier_engine_queue_wait_seconds_count"
    assert value(after, count, kind="final") == value(before, count, kind="final") + 2
    decodes = "greffier_engine_decodes_total"
    assert value(after, decodes, kind="final") == value(before, decodes, kind="final") + 2
    dropped = "greffier_engine_dropped_interims_total"
    assert value(after, dropped) == value(before, dropped) + 1
    # The second final waited for the first one's decode (held about 0.2 s).
    wait_sum = "greffier_engine_queue_wait_seconds_sum"
    assert value(after, wait_sum, kind="final") - value(before, wait_sum, kind="final") >= 0.15
    assert value(after, "greffier_speaking_streams") >= 2  # metrics-a and metrics-c


def test_caption_store_and_room_events_move_their_families() -> None:
    before = local_families()
    metrics.caption_latency("final", 0.8)
    metrics.caption_latency("first_interim", 1.2)
    metrics.retracted_segment()
    metrics.store_error()
    metrics.set_rooms(3)
    metrics.stream_opened()
    after = local_families()
    for kind in ("final", "first_interim"):
        count = "greffier_caption_latency_seconds_count"
        assert value(after, count, kind=kind) == value(before, count, kind=kind) + 1
    bucket = "greffier_caption_latency_seconds_bucket"
    assert (value(after, bucket, kind="final", le="1.0")
            == value(before, bucket, kind="final", le="1.0") + 1)
    for counter in ("greffier_retracted_segments_total", "greffier_store_errors_total"):
        assert value(after, counter) == value(before, counter) + 1
    assert value(after, "greffier_rooms") == 3
    assert value(after, "greffier_streams") == value(before, "greffier_streams") + 1
    metrics.stream_closed()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_worker_endpoint_serves_the_registry_on_its_port() -> None:
    port = free_port()
    server = metrics.serve(port)
    try:
        metrics.set_rooms(2)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert value(scrape(text), "greffier_rooms") == 2
        with pytest.raises(OSError):
            metrics.serve(port)  # a fixed port already taken fails loudly
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_settings_default_to_a_fixed_loopback_port() -> None:
    agent = AgentSettings()
    assert (agent.metrics_port, agent.metrics_host) == (9464, "127.0.0.1")
    assert agent.capacity_streams == 0 and 0 < agent.load_threshold < 1


# -- load -------------------------------------------------------------------------------------


def test_load_is_the_largest_share_of_what_limits_captions() -> None:
    assert worker_load(0, 2, 0.0, 0.0) == 0.0
    assert worker_load(1, 2, 0.0, 0.0) == 0.5
    assert worker_load(1, 4, 0.5 * QUEUE_WAIT_BUDGET_S, 0.0) == 0.5  # the queue wait decides
    assert worker_load(1, 4, 0.0, 0.75 * LAG_BUDGET_S) == 0.75  # the caption lag decides
    assert worker_load(5, 2, 0.0, 0.0) == 1.0  # capped: full
    assert worker_load(1, 2, 3 * QUEUE_WAIT_BUDGET_S, 9 * LAG_BUDGET_S) == 1.0
    # idle: no stream speaking, so the past lag does not keep rooms away
    assert worker_load(0, 2, 3 * QUEUE_WAIT_BUDGET_S, 9 * LAG_BUDGET_S) == 0.0
    with pytest.raises(ValueError, match="capacity"):
        worker_load(1, 0, 0.0, 0.0)


def test_a_full_engine_is_past_the_default_threshold() -> None:
    threshold = AgentSettings().load_threshold
    capacity = default_capacity("cpu")
    assert capacity == CPU_CAPACITY_STREAMS >= 4  # measured (benchmarks/results/capacity.json)
    assert default_capacity("cuda") > capacity
    below = int(threshold * capacity)  # the threshold keeps headroom under the capacity
    assert worker_load(below, capacity, 0.1, 1.0) < threshold  # takes another room
    assert worker_load(capacity, capacity, 0.1, 1.0) >= threshold  # refuses
    assert worker_load(1, capacity, 0.0, LAG_BUDGET_S) >= threshold  # captions lag: refuses


def test_current_load_reads_the_recent_figures_and_exports_them() -> None:
    for _ in range(20):  # finals published very late, just now
        metrics.caption_latency("final", 10 * LAG_BUDGET_S)
    metrics.engine_batch("final", 0.05, [("speaker-1", 0.0)], 0)  # one stream speaking
    load = current_load(64)
    assert load == 1.0
    assert value(local_families(), "greffier_worker_load") == 1.0
    assert value(local_families(), "greffier_capacity_streams") == 64
    # the late final leaves the window after RECENT_WINDOW_S
    assert metrics.recent(now=1e12).caption_lag_s == 0.0


# -- the dashboard ----------------------------------------------------------------------------


def dashboard_exprs() -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "expr" and isinstance(item, str):
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def test_every_dashboard_query_names_an_exported_family() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    exported = set(local_families())
    suffixes = ("_total", "_bucket", "_count", "_sum", "_created")
    names = {n for e in exprs for n in re.findall(r"\bgreffier_[a-z_]+", e)}
    for name in names:
        family = next((name[: -len(s)] for s in suffixes if name.endswith(s)), name)
        assert family in exported or family in metrics.FAMILIES, name
    wanted = {"greffier_rooms", "greffier_streams", "greffier_engine_queue_depth",
              "greffier_engine_queue_wait_seconds_bucket",
              "greffier_caption_latency_seconds_bucket",
              "greffier_engine_decode_seconds_bucket", "greffier_engine_dropped_interims_total",
              "greffier_retracted_segments_total", "greffier_store_errors_total",
              "greffier_gpu_memory_used_bytes", "greffier_worker_load"}
    assert wanted <= names


def test_the_worker_reports_its_engine_load_to_livekit() -> None:
    from greffier.agents.worker import build_server  # imports livekit-agents
    from greffier.core.config import Settings

    settings = Settings(agent=AgentSettings(capacity_streams=2, load_threshold=0.8))
    server = build_server(settings)
    assert server._load_threshold == 0.8  # livekit-agents refuses jobs at this load
    metrics.engine_batch("final", 0.05, [("speaker-1", 0.0), ("speaker-2", 0.0)], 0)
    assert server.load_fnc() == 1.0  # two streams speaking at once fill a capacity of 2
    assert value(local_families(), "greffier_worker_load") == 1.0
    assert value(local_families(), "greffier_capacity_streams") == 2


def test_a_worker_that_never_refuses_stays_under_the_servers_target_load() -> None:
    """livekit-server sends nothing to a worker at its target load (0.7) and drops the room:
    a worker told never to refuse reports a scaled load, one that may refuse its own."""
    assert reported_load(1.0, float("inf")) < SERVER_TARGET_LOAD
    assert reported_load(0.2, 1.0) < reported_load(0.6, 1.0) < SERVER_TARGET_LOAD
    assert reported_load(1.0, 0.7) == 1.0
    assert AgentSettings().load_threshold == SERVER_TARGET_LOAD
