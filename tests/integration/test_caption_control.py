"""Caption control through the service's API on the real server with a real worker: start by
dispatch, status with the speakers, stop (the captioner leaves, the minutes are written, the
record is ended), a control request from a participant who may not send one ignored, and the
captioner removed by the server ending the meeting all the same. Also: a viewer token with no
media subscription receives the captions' text streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from livekit import api, rtc
from pydantic import SecretStr

from greffier.core.audio import SAMPLE_RATE
from greffier.core.config import AgentSettings, LiveKitSettings, ServiceSettings, Settings
from greffier.livekit.client import (
    CaptionCollector,
    connect,
    publish_audio,
    server_api,
)
from greffier.livekit.tokens import make_token
from greffier.service.app import create_app
from greffier.store.sql import TranscriptStore
from greffier.subtitles.protocol import TOPIC_TRANSCRIPTION
from tests.integration.rooms import captioners, clip_audio, room_name, wait_for

pytestmark = pytest.mark.integration

KEY = "integration-operator-key-0123456789"
OPERATOR = {"Authorization": f"Bearer {KEY}"}
CLIP = "ljspeech_LJ001-0009"


@pytest.fixture
async def service(
    livekit: LiveKitSettings, worker: Any, agent_name: str, worker_data: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The service on the worker's store, dispatching the session's agent."""
    settings = Settings(
        data_dir=worker_data, livekit=livekit, agent=AgentSettings(name=agent_name),
        service=ServiceSettings(api_keys=[SecretStr(KEY)]),
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test", timeout=90) as client:
        yield client
    app.state.greffier.close()


def member(lk: LiveKitSettings, room: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(lk, identity='alice', room=room)}"}


async def ended_with_minutes(data_dir: Path, meeting_id: str) -> bool:
    store = TranscriptStore(f"sqlite:///{data_dir / 'greffier.db'}")
    try:
        meeting = store.meeting(meeting_id)
    finally:
        store.close()
    folder = data_dir / "minutes" / meeting_id
    return meeting is not None and not meeting.live and len(list(folder.glob("*"))) >= 5


def stored_texts(data_dir: Path, meeting_id: str) -> list[str]:
    store = TranscriptStore(f"sqlite:///{data_dir / 'greffier.db'}")
    try:
        return [s.text for s in store.segments_of(meeting_id)]
    finally:
        store.close()


async def test_start_status_and_stop_through_the_api(
    service: httpx.AsyncClient, livekit: LiveKitSettings, worker_data: Path, clips: Any
) -> None:
    room = room_name()
    alice = await connect(livekit, identity="alice", room=room, name="Alice Martin",
                          auto_subscribe=False)
    # A caption page's viewer: no media subscription, yet the captions' text streams arrive.
    token = (await service.get("/api/token", params={"room": room},
                               headers=member(livekit, room))).json()
    viewer = rtc.Room()
    streamed: list[str] = []
    viewer.register_text_stream_handler(
        TOPIC_TRANSCRIPTION, lambda reader, who: streamed.append(who))
    await viewer.connect(token["url"], token["token"])
    listener = await connect(livekit, identity="listener", room=room)
    got = CaptionCollector(listener)
    try:
        started = await service.post(f"/api/rooms/{room}/captions", headers=OPERATOR)
        assert started.status_code == 202, started.text
        assert await wait_for(lambda: _has_captioner(livekit, room)), "no captioner joined"
        again = await service.post(f"/api/rooms/{room}/captions", headers=OPERATOR)
        assert again.status_code == 200 and again.json()["captioning"] is True
        await asyncio.sleep(1.0)
        assert len(await captioners(livekit, room)) == 1

        await publish_audio(alice, clip_audio(clips, CLIP), SAMPLE_RATE)
        assert await wait_for(lambda: _final_of(got, "alice"), timeout_s=30), got.dump()
        assert "alice" in streamed, "the viewer received no caption stream"
        status = await service.get(f"/api/rooms/{room}/captions", headers=member(livekit, room))
        body = status.json()
        assert status.status_code == 200 and body["captioning"] is True and body["live"]
        assert body["since"] is not None and "Alice Martin" in body["speakers"]
        meeting_id = body["meeting_id"]

        # Alice may not stop the minutes for everyone: ignored.
        for action in (b'{"action": "stop"}', b'{"action": "end"}'):
            await alice.local_participant.publish_data(action, reliable=True,
                                                       topic="greffier.control")
        await asyncio.sleep(3.0)
        assert await captioners(livekit, room), "a participant's control request was obeyed"
        assert not await ended_with_minutes(worker_data, meeting_id)

        t0 = time.monotonic()
        stopped = await service.delete(f"/api/rooms/{room}/captions", headers=OPERATOR)
        assert stopped.status_code == 200, stopped.text
        assert time.monotonic() - t0 < 25, "the signed stop request was not obeyed"
        after = stopped.json()
        assert after["captioning"] is False and after["live"] is False
        assert after["meeting_id"] == meeting_id
        assert not await captioners(livekit, room)
        assert await ended_with_minutes(worker_data, meeting_id)
        finals = [c.text for c in got.finals("data", "alice")]
        assert all(text in stored_texts(worker_data, meeting_id) for text in finals)
    finally:
        for r in (alice, viewer, listener):
            await r.disconnect()


async def test_the_captioner_removed_by_the_server_ends_the_meeting(
    service: httpx.AsyncClient, livekit: LiveKitSettings, worker_data: Path, clips: Any
) -> None:
    room = room_name()
    alice = await connect(livekit, identity="alice", room=room, name="Alice Martin",
                          auto_subscribe=False)
    listener = await connect(livekit, identity="listener", room=room)
    got = CaptionCollector(listener)
    try:
        assert (await service.post(f"/api/rooms/{room}/captions",
                                   headers=OPERATOR)).status_code == 202
        assert await wait_for(lambda: _has_captioner(livekit, room)), "no captioner joined"
        await publish_audio(alice, clip_audio(clips, CLIP), SAMPLE_RATE)
        assert await wait_for(lambda: _final_of(got, "alice"), timeout_s=30), got.dump()
        meeting_id = (await service.get(f"/api/rooms/{room}/captions",
                                        headers=OPERATOR)).json()["meeting_id"]
        client = server_api(livekit)
        try:
            for identity in await captioners(livekit, room):
                await client.room.remove_participant(
                    api.RoomParticipantIdentity(room=room, identity=identity))
        finally:
            await client.aclose()
        assert await wait_for(lambda: ended_with_minutes(worker_data, meeting_id),
                              timeout_s=30), "removing the captioner did not end the meeting"
        finals = [c.text for c in got.finals("data", "alice")]
        assert finals and all(t in stored_texts(worker_data, meeting_id) for t in finals)
    finally:
        await alice.disconnect()
        await listener.disconnect()


async def _has_captioner(livekit: LiveKitSettings, room: str) -> bool:
    return bool(await captioners(livekit, room))


async def _final_of(got: CaptionCollector, identity: str) -> bool:
    return bool(got.finals("data", identity))
