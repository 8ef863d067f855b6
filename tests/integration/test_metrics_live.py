"""The worker's Prometheus endpoint scraped during a real meeting (real server, worker and
Whisper), read with prometheus_client's parser."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.rooms import Speaker, caption_session, clip_audio

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        s.name + str(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


async def test_the_worker_endpoint_counts_a_meeting(livekit, worker, agent_name, clips) -> None:
    port = int(worker.env["GREFFIER_AGENT__METRICS_PORT"])
    before = scrape(port)
    final_count = "greffier_caption_latency_seconds_count[('kind', 'final')]"
    seen: list[dict[str, float]] = []

    async def watch() -> None:
        while True:
            seen.append(await asyncio.to_thread(scrape, port))
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    try:
        speaker = Speaker("erin", "Erin", clip_audio(clips, "ljspeech_LJ001-0009"))
        got = await caption_session(livekit, agent_name, [speaker])
    finally:
        watcher.cancel()
    assert got.finals("data", "erin"), got.dump()
    assert seen, "the endpoint never answered"
    # During the meeting: its room (a previous test's may still linger) and Erin's stream.
    assert max(s.get("greffier_rooms[]", 0) for s in seen) >= 1
    assert max(s.get("greffier_streams[]", 0) for s in seen) >= 1
    after = scrape(port)
    assert after.get(final_count, 0) > before.get(final_count, 0)
    first = "greffier_caption_latency_seconds_count[('kind', 'first_interim')]"
    assert after.get(first, 0) > before.get(first, 0)
    for kind in ("final", "interim"):
        key = f"greffier_engine_queue_wait_seconds_count[('kind', '{kind}')]"
        assert after.get(key, 0) > before.get(key, 0), key
    assert 0 <= after["greffier_worker_load[]"] <= 1
    assert after["greffier_capacity_streams[]"] >= 1
