"""Publishes caption updates into a room, in the three forms of ``subtitles.protocol``.

One publisher per room, one ordered queue per track. The queue is bounded by its drop policy:
a newer interim of a segment replaces an older interim still waiting; finals are never dropped.
A failed publish is logged (without text) and the next update goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from livekit import rtc

from greffier.core.log import get_logger
from greffier.core.types import CaptionUpdate
from greffier.subtitles.live import CaptionQueue
from greffier.subtitles.protocol import (
    TOPIC_CAPTIONS,
    TOPIC_TRANSCRIPTION,
    CaptionMessage,
    text_stream_attributes,
)

logger = get_logger("agents.publisher")


class TrackPublisher:
    """Ordered, coalescing publication of one track's captions."""

    def __init__(self, room: rtc.Room, *, legacy: bool = True) -> None:
        self._room = room
        self._legacy = legacy
        self._queue = CaptionQueue()
        self._wake = asyncio.Event()
        self._closed = False
        self.published = 0
        self.failed = 0
        self._task = asyncio.create_task(self._run())

    def enqueue(self, update: CaptionUpdate) -> None:
        """Queue an update (see :class:`CaptionQueue` for the drop policy)."""
        self._queue.push(update)
        self._wake.set()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Publish what is queued, then stop."""
        self._closed = True
        self._wake.set()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        if not self._task.done():
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            update = self._queue.pop()
            if update is None:
                continue
            try:
                t0 = time.monotonic()
                await publish_caption(self._room, update, legacy=self._legacy)
                self.published += 1
                logger.debug("published %s %s in %.3f s (%d queued)", update.segment_id,
                             "final" if update.final else "interim", time.monotonic() - t0,
                             len(self._queue))
            except (TimeoutError, rtc.ConnectError, RuntimeError, OSError) as e:
                self.failed += 1
                logger.warning("publishing segment %s failed: %s", update.segment_id,
                               type(e).__name__)


def legacy_transcription(update: CaptionUpdate) -> rtc.Transcription:
    """The update as a legacy ``publish_transcription`` payload (times in milliseconds)."""
    return rtc.Transcription(
        participant_identity=update.speaker.identity,
        track_sid=update.track_sid,
        segments=[
            rtc.TranscriptionSegment(
                id=update.segment_id,
                text=update.text,
                start_time=int(max(0.0, update.start) * 1000),
                end_time=int(max(0.0, update.end) * 1000),
                language=update.language,
                final=update.final,
            )
        ],
    )


async def publish_caption(room: rtc.Room, update: CaptionUpdate, *, legacy: bool = True) -> None:
    """Send one update as a text stream, a legacy transcription and a JSON data message."""
    local = room.local_participant
    writer = await local.stream_text(
        topic=TOPIC_TRANSCRIPTION,
        sender_identity=update.speaker.identity,
        attributes=text_stream_attributes(update),
    )
    await writer.write(update.text)
    await writer.aclose()
    if legacy:
        await local.publish_transcription(legacy_transcription(update))
    await local.publish_data(
        CaptionMessage.from_update(update).to_bytes(), reliable=True, topic=TOPIC_CAPTIONS
    )
