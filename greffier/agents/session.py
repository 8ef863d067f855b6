"""A room's session: when the meeting ends, what a request for minutes does."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from livekit import rtc

from greffier.agents.captioner import RoomCaptioner
from greffier.agents.meeting import MeetingRecorder, in_store_thread
from greffier.core.config import Settings
from greffier.core.log import get_logger
from greffier.core.types import TranscriptSegment

logger = get_logger("agents.session")

CONTROL_TOPIC = "greffier.control"
"""Data topic of requests to the captioner: ``{"action": "minutes"}`` writes the minutes now,
``{"action": "end"}`` ends the meeting (minutes, then the captioner leaves)."""
MINUTES_TOPIC = "greffier.minutes"
"""Data topic of the captioner's answer: ``{"meeting_id": ..., "files": [...]}``."""


class MeetingSession:
    """Ends the meeting when the last participant has been gone for ``linger_s``, or on
    request, after the last finals are stored and shared-microphone tracks re-diarized."""

    def __init__(self, ctx: Any, recorder: MeetingRecorder, settings: Settings) -> None:
        self.ctx = ctx
        self.recorder = recorder
        self.settings = settings
        self.captioner: RoomCaptioner | None = None
        self._linger: asyncio.Task[None] | None = None
        self._ending = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def humans_changed(self, count: int) -> None:
        if count > 0:
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            return
        if self._linger is None and not self._ending:
            self._linger = asyncio.create_task(self._end_after(self.settings.agent.linger_s))

    async def _end_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.end("everyone left")

    def on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != CONTROL_TOPIC:
            return
        try:
            action = json.loads(packet.data).get("action")
        except (ValueError, AttributeError):
            logger.warning("ignoring a malformed control message")
            return
        if action == "minutes":
            self._spawn(self._minutes_now())
        elif action == "end":
            self._spawn(self.end("requested"))
        else:
            logger.warning("unknown control action")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _minutes_now(self) -> None:
        paths = await self.recorder.write_minutes(end=False)
        await self._announce(paths)

    async def _announce(self, paths: list[Any]) -> None:
        payload = json.dumps({"meeting_id": self.recorder.meeting.id,
                              "files": [p.name for p in paths]})
        with contextlib.suppress(Exception):
            await self.ctx.room.local_participant.publish_data(
                payload, reliable=True, topic=MINUTES_TOPIC)

    async def end(self, reason: str) -> None:
        """Store the last finals, refine shared microphones, write the minutes, leave."""
        if self._ending:
            return
        self._ending = True
        logger.info("meeting %s ends (%s)", self.recorder.meeting.id, reason)
        if self.captioner is not None:
            await self.captioner.aclose()
            await self._refine()
        paths = await self.recorder.write_minutes(end=True)
        await self._announce(paths)
        self.ctx.shutdown(f"meeting ended: {reason}")

    async def _refine(self) -> None:
        assert self.captioner is not None
        if not self.captioner.shared_tracks:
            return
        stored = await in_store_thread(self.recorder.store.segments_of, self.recorder.meeting.id)
        refined: list[TranscriptSegment] = []
        for track in self.captioner.shared_tracks:
            if track.shared_mic is None:
                continue
            mine = [s for s in stored if s.track_sid == track.track_sid]
            try:
                refined += await track.shared_mic.refine(mine, track.timeline)
            except Exception:  # noqa: BLE001 - the live labels stay
                logger.exception("end-of-meeting diarization of %s failed", track.track_sid)
        if refined:
            await self.recorder.replace_segments(refined)

    async def aclose(self) -> None:
        """Job shutdown (worker stopping or meeting ended): keep every final stored."""
        if self._linger is not None:
            self._linger.cancel()
        if self.captioner is not None and not self._ending:
            await self.captioner.aclose()
