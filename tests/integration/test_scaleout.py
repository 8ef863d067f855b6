"""Two workers behind one LiveKit server (single node: no Redis): rooms spread by the load
each worker reports from its engine, and a worker SIGKILLed mid-meeting loses nothing — its
room is dispatched again to the other (greffier.agents.takeover: livekit-server itself never
re-dispatches), captions resume within a bound, and the finals published before the kill are
stored once, in the same (continued) meeting record."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from greffier.core.audio import SAMPLE_RATE
from greffier.core.config import LiveKitSettings, Settings
from greffier.livekit.client import CaptionCollector, connect, dispatch_agent, publish_audio
from greffier.livekit.worker_process import WorkerProcess
from greffier.store.sql import TranscriptStore
from tests.integration.conftest import free_port, worker_env
from tests.integration.rooms import captioners, clip_audio, room_name, wait_for, with_gaps

pytestmark = pytest.mark.integration

RESUME_BOUND_S = 20.0
"""Captions of the killed worker's room come back within this (heartbeat 2 s, orphan after
7 s, a sweep, the dispatch, the join, the first decode)."""


def scrape(worker: WorkerProcess) -> dict[str, float]:
    port = int(worker.env["GREFFIER_AGENT__METRICS_PORT"])
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=3).text
    except httpx.HTTPError:
        return {}
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels}


@pytest.fixture(scope="module")
def pair(
    livekit: LiveKitSettings, tmp_path_factory
) -> Iterator[tuple[str, Path, list[WorkerProcess]]]:
    """Two workers under one agent name, one data directory (one SQLite store, one journal
    folder), each refusing rooms at the default threshold 0.7 with a capacity of 1 stream: one
    person speaking fills a worker."""
    data = tmp_path_factory.mktemp("scaleout")
    name = f"greffier-scale-{uuid.uuid4().hex[:6]}"

    def env() -> dict[str, str]:
        return {**worker_env(name, data), "GREFFIER_AGENT__LOAD_THRESHOLD": "0.7",
                "GREFFIER_AGENT__CAPACITY_STREAMS": "1"}

    workers = [WorkerProcess(env(), log_path=data / f"worker{i}.log") for i in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda w: w.start(), workers))
    yield name, data, workers
    for w in workers:
        w.stop()


def _epoch(segment_id: str) -> str:
    """``<track sid>-<captioner epoch>-<n>``: the epoch tells which captioner made it."""
    return segment_id.rsplit("-", 2)[-2]


async def test_rooms_spread_and_a_killed_worker_loses_nothing(livekit, pair, clips) -> None:
    name, data, workers = pair
    lk = livekit
    t_start = time.monotonic()

    # Room A: Alice speaks for about 40 s; one worker takes it and reports itself full.
    room_a = room_name()
    listener = await connect(lk, identity="listener", room=room_a, name="Listener")
    got = CaptionCollector(listener)
    alice = await connect(lk, identity="alice", room=room_a, name="Alice", auto_subscribe=False)
    ids = ["ljspeech_LJ001-0001", "ljspeech_LJ001-0003", "ljspeech_LJ001-0005",
           "ljspeech_LJ001-0007", "ljspeech_LJ001-0010"]
    audio_a = with_gaps(*[clip_audio(clips, i) for i in ids], gap_s=0.6)
    await dispatch_agent(lk, room_a, name)
    assert await wait_for(lambda: _listed(lk, room_a), 20), "no captioner joined room A"
    publishing_a = asyncio.create_task(publish_audio(alice, audio_a, SAMPLE_RATE))

    async def full_worker() -> bool:
        return any(scrape(w).get("greffier_worker_load", 0) >= 0.7 for w in workers)

    assert await wait_for(full_worker, 20), "no worker reported a full load while Alice spoke"
    holder = next(w for w in workers if scrape(w).get("greffier_worker_load", 0) >= 0.7)
    other = next(w for w in workers if w is not holder)
    await asyncio.sleep(3.0)  # livekit-agents sends its status every 2.5 s

    # Room B: the full worker refuses it, so the other one takes it.
    room_b = room_name()
    bob = await connect(lk, identity="bob", room=room_b, name="Bob", auto_subscribe=False)
    await dispatch_agent(lk, room_b, name)
    assert await wait_for(lambda: _listed(lk, room_b), 20), "room B was not taken (dropped?)"

    async def spread() -> bool:
        return all(scrape(w).get("greffier_rooms", 0) >= 1 for w in workers)

    assert await wait_for(spread, 10), [scrape(w) for w in workers]
    await publish_audio(bob, clip_audio(clips, "jfk"), SAMPLE_RATE)
    await bob.disconnect()

    # Kill the worker holding room A once Alice has finals (its room must come back).
    async def two_finals() -> bool:
        return len(got.finals("data", "alice")) >= 2

    assert await wait_for(two_finals, 40), got.dump()
    before = list(got.finals("data", "alice"))
    epochs = {_epoch(c.segment_id) for c in got.via("data")}
    killed_at = time.time()
    holder.kill()

    async def resumed() -> bool:
        return any(_epoch(c.segment_id) not in epochs for c in got.via("data"))

    assert await wait_for(resumed, RESUME_BOUND_S + 10), got.dump()
    resume_s = min(c.received_at for c in got.via("data") if _epoch(c.segment_id) not in epochs)
    resume_s -= killed_at
    await publishing_a
    assert await wait_for(
        lambda: _any(got, lambda c: c.final and _epoch(c.segment_id) not in epochs), 15
    ), got.dump()
    await alice.disconnect()
    await listener.disconnect()
    took = time.monotonic() - t_start
    print(f"captions resumed {resume_s:.1f} s after the kill (test {took:.0f} s)")
    assert resume_s <= RESUME_BOUND_S, got.dump()
    assert "dispatched again" in other.tail(200) or "dispatched again" in holder.tail(200)

    # The store: one meeting for room A (continued), every final published before the kill in
    # it once, with the text that was published; the new captioner's finals join it.
    store = TranscriptStore(Settings(data_dir=data).store_url)
    try:
        meetings = store.list_meetings(room=room_a)
        assert len(meetings) == 1, meetings
        stored = store.segments_of(meetings[0].id)
    finally:
        store.close()
    by_id = {}
    for s in stored:
        by_id.setdefault(s.segment_id, []).append(s)
    for c in before:
        assert len(by_id.get(c.segment_id, [])) == 1, (c.segment_id, sorted(by_id))
        assert by_id[c.segment_id][0].text == c.text
    texts = [s.text for s in stored]
    assert len(texts) == len(set(texts)), texts
    assert any(_epoch(s.segment_id) not in epochs for s in stored), sorted(by_id)


async def _listed(lk: LiveKitSettings, room: str) -> bool:
    return bool(await captioners(lk, room))


async def _any(got: CaptionCollector, pred) -> bool:  # type: ignore[no-untyped-def]
    return any(pred(c) for c in got.via("data"))


async def test_a_frozen_captioner_yields_to_its_replacement(livekit, pair, clips) -> None:
    """A worker frozen (SIGSTOP) past the orphan bound is replaced like a dead one; when it
    wakes it sees the newcomer naming it (``greffier.replaces``) and leaves: one captioner."""
    name, data, workers = pair
    lk = livekit
    alive = [w for w in workers if w.proc is not None and w.proc.poll() is None]
    fresh = WorkerProcess({**workers[0].env,
                           "GREFFIER_AGENT__METRICS_PORT": str(free_port())},
                          log_path=data / "worker3.log").start()
    workers.append(fresh)
    alive.append(fresh)
    room = room_name()
    listener = await connect(lk, identity="listener", room=room, name="Listener")
    got = CaptionCollector(listener)
    carol = await connect(lk, identity="carol", room=room, name="Carol", auto_subscribe=False)
    ids = ["ljspeech_LJ001-0012", "ljspeech_LJ001-0014", "ljspeech_LJ001-0015",
           "ljspeech_LJ001-0016"]
    await dispatch_agent(lk, room, name)
    assert await wait_for(lambda: _listed(lk, room), 20), "no captioner joined"
    publishing = asyncio.create_task(publish_audio(
        carol, with_gaps(*[clip_audio(clips, i) for i in ids], gap_s=0.6), SAMPLE_RATE))

    async def holder_known() -> bool:
        return any(scrape(w).get("greffier_rooms", 0) >= 1 for w in alive)

    assert await wait_for(holder_known, 15)
    frozen = next(w for w in alive if scrape(w).get("greffier_rooms", 0) >= 1)
    assert await wait_for(lambda: _any(got, lambda c: c.final), 25), got.dump()
    epochs = {_epoch(c.segment_id) for c in got.via("data")}
    os.killpg(frozen.pid, signal.SIGSTOP)
    try:
        assert await wait_for(
            lambda: _any(got, lambda c: _epoch(c.segment_id) not in epochs), RESUME_BOUND_S
        ), got.dump()
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)

    async def one_captioner() -> bool:
        return len(await captioners(lk, room)) == 1

    assert await wait_for(one_captioner, 20), await captioners(lk, room)
    await publishing
    await carol.disconnect()
    await listener.disconnect()
    store = TranscriptStore(Settings(data_dir=data).store_url)
    try:
        assert len(store.list_meetings(room=room)) == 1
    finally:
        store.close()
    assert frozen.proc is not None and frozen.proc.poll() is None, "the frozen worker died"
