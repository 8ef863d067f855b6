"""Helpers for tests that run rooms on the real server."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from greffier.core.audio import SAMPLE_RATE, read_audio
from greffier.core.config import LiveKitSettings
from greffier.livekit.client import CaptionCollector, connect, publish_audio


def room_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def with_gaps(*parts: np.ndarray, gap_s: float = 1.5) -> np.ndarray:
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    out = [gap]
    for p in parts:
        out += [p, gap]
    return np.concatenate(out)


@dataclass
class Speaker:
    identity: str
    name: str
    audio: np.ndarray
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    attributes: dict[str, str] = field(default_factory=dict)


async def wait_quiet(
    collector: CaptionCollector, quiet_s: float = 3.0, timeout_s: float = 30.0
) -> None:
    """Wait until no caption has arrived for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = collector.captions[-1].received_at if collector.captions else 0.0
        if time.time() - last > quiet_s:
            return
        await asyncio.sleep(0.2)


async def wait_for(predicate, timeout_s: float = 20.0, step: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(step)
    return False


async def captioners(lk: LiveKitSettings, room: str) -> list[str]:
    from greffier.livekit.client import list_participants

    return [p.identity for p in await list_participants(lk, room)
            if p.attributes.get("greffier.role") == "captioner"]


async def caption_session(
    lk: LiveKitSettings, agent_name: str, speakers: list[Speaker], *, room: str | None = None
) -> CaptionCollector:
    """Dispatch the agent, have ``speakers`` publish at once, return what a listener got."""
    from greffier.livekit.client import dispatch_agent

    room = room or room_name()
    listener = await connect(lk, identity="listener", room=room, name="Listener")
    collector = CaptionCollector(listener)
    await dispatch_agent(lk, room, agent_name)
    assert await wait_for(lambda: _has_captioner(lk, room)), "no captioner joined"
    rooms = [await connect(lk, identity=s.identity, room=room, name=s.name,
                           attributes=s.attributes, auto_subscribe=False) for s in speakers]
    await asyncio.gather(*[
        publish_audio(r, s.audio, s.sample_rate, num_channels=s.channels)
        for r, s in zip(rooms, speakers, strict=True)
    ])
    await wait_quiet(collector)
    for r in rooms:
        await r.disconnect()
    await listener.disconnect()
    return collector


async def _has_captioner(lk: LiveKitSettings, room: str) -> bool:
    return bool(await captioners(lk, room))


def clip_audio(clips, *ids: str) -> np.ndarray:
    return with_gaps(*[read_audio(clips[i].audio) for i in ids])


def clip_text(clips, *ids: str) -> str:
    return " ".join(clips[i].text for i in ids)
