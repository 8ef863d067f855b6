"""Publishes one track's caption updates into a room, in the three forms of
``subtitles.protocol``.

One publisher per track, with one ordered queue. Text streams and ``greffier.captions``
messages carry every interim and final; the queue is bounded by its drop policy (a newer
interim of a segment replaces an older interim still waiting; finals are never dropped). The
legacy ``publish_transcription`` path carries only :class:`AppendOnlyCaptions` pieces (final,
never revised, one id each: what La Suite Meet can display); they are computed as updates
arrive, so no coalescing loses one, and go out before the queued updates. A failed publish is
logged (without text) and the next one goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable

from livekit import rtc

from greffier.core.log import get_logger, spawn
from greffier.core.types import CaptionUpdate
from greffier.subtitles.caption_queue import CaptionQueue
from greffier.subtitles.legacy import AppendOnlyCaptions
from greffier.subtitles.protocol import (
    TOPIC_CAPTIONS,
    TOPIC_TRANSCRIPTION,
    CaptionMessage,
    text_stream_attributes,
)

logger = get_logger("agents.publisher")


class TrackPublisher:
    """Ordered, coalescing publication of one track's captions."""

    def __init__(self, room: rtc.Room, *, legacy: bool = True, track_sid: str = "") -> None:
        self._room = room
        self._legacy = legacy
        self._queue = CaptionQueue()
        self._pieces = AppendOnlyCaptions()
        self._legacy_out: deque[CaptionUpdate] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self.published = 0
        self.failed = 0
        self._task = spawn(self._run(), name=f"greffier-publish-{track_sid}", logger=logger)

    def enqueue(self, update: CaptionUpdate) -> None:
        """Queue an update (see :class:`CaptionQueue` for the drop policy) and the legacy
        piece it makes, if any."""
        self._queue.push(update)
        if self._legacy:
            piece = self._pieces.push(update)
            if piece is not None:
                self._legacy_out.append(piece)
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
            if self._legacy_out:
                piece = self._legacy_out.popleft()
                await self._send(
                    piece,
                    "legacy piece",
                    self._room.local_participant.publish_transcription(legacy_transcription(piece)),
                )
                continue
            if not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            update = self._queue.pop()
            if update is not None:
                await self._send(
                    update,
                    "final" if update.final else "interim",
                    publish_caption(self._room, update),
                )

    async def _send(self, update: CaptionUpdate, kind: str, sending: Awaitable[None]) -> None:
        try:
            t0 = time.monotonic()
            await sending
            self.published += 1
            logger.debug(
                "published %s %s in %.3f s (%d queued)",
                update.segment_id,
                kind,
                time.monotonic() - t0,
                len(self._queue) + len(self._legacy_out),
            )
        except (TimeoutError, rtc.ConnectError, RuntimeError, OSError) as e:
            self.failed += 1
            logger.warning("publishing %s %s failed: %s", kind, update.segment_id, type(e).__name__)


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


async def publish_caption(room: rtc.Room, update: CaptionUpdate) -> None:
    """Send one update as a text stream and a JSON data message (the legacy path carries
    :class:`AppendOnlyCaptions` pieces instead, see :class:`TrackPublisher`)."""
    local = room.local_participant
    writer = await local.stream_text(
        topic=TOPIC_TRANSCRIPTION,
        sender_identity=update.speaker.identity,
        attributes=text_stream_attributes(update),
    )
    await writer.write(update.text)
    await writer.aclose()
    await local.publish_data(
        CaptionMessage.from_update(update).to_bytes(), reliable=True, topic=TOPIC_CAPTIONS
    )
