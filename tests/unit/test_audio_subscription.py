"""The captioner's audio streams receive only their own frames from the LiveKit SDK's event
queue (the SDK's own filter hands every stream every frame: N tracks, N x N wake-ups)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from livekit.rtc._ffi_client import FfiClient
from livekit.rtc._proto import ffi_pb2

from greffier.agents.captioner import narrow_subscription

pytestmark = pytest.mark.unit


def frame_event(handle: int) -> ffi_pb2.FfiEvent:
    event = ffi_pb2.FfiEvent()
    event.audio_stream_event.stream_handle = handle
    event.audio_stream_event.eos.SetInParent()
    return event


async def test_an_audio_stream_gets_its_own_frames_only() -> None:
    events = FfiClient.instance.queue
    loop = asyncio.get_running_loop()
    # subscribed as livekit 1.1.21's AudioStream does: every audio_stream_event
    def audio(e: ffi_pb2.FfiEvent) -> bool:
        return e.WhichOneof("message") == "audio_stream_event"

    mine = events.subscribe(loop, filter_fn=audio)
    other = events.subscribe(loop, filter_fn=audio)
    try:
        stream = SimpleNamespace(_ffi_queue=mine, _ffi_handle=SimpleNamespace(handle=7001))
        assert narrow_subscription(stream)  # type: ignore[arg-type]
        for handle in (7001, 7002, 7002, 7001, 7003):
            events.put(frame_event(handle))
        await asyncio.sleep(0.05)
        got = []
        while not mine.empty():
            got.append(mine.get_nowait().audio_stream_event.stream_handle)
        assert got == [7001, 7001]
        # a stream left as the SDK made it still gets everything (the filter is per stream)
        assert other.qsize() == 5
    finally:
        events.unsubscribe(mine)
        events.unsubscribe(other)


def test_a_stream_the_sdk_no_longer_shapes_so_is_left_alone() -> None:
    assert not narrow_subscription(SimpleNamespace())  # type: ignore[arg-type]
