"""A room's session: when the meeting ends, what a control request does.

The meeting ends (last finals stored, shared microphones refined, minutes written, record
ended) when everyone has left for ``linger_s``, on an allowed ``greffier.control`` request
(see :mod:`greffier.subtitles.control`), or when the server removes the captioner or deletes
the room (``DELETE /api/rooms/{room}/captions`` does either). A worker that stops leaves the
record live, to be continued."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from livekit import rtc

from greffier.agents.captioner import RoomCaptioner
from greffier.agents.meeting import MeetingRecorder, in_store_thread
from greffier.core.config import Settings
from greffier.core.log import error_summary, get_logger, spawn
from greffier.core.types import TranscriptSegment
from greffier.subtitles.control import (
    CONTROL_TOPIC,
    MINUTES_TOPIC,
    allowed_sender,
    parse_request,
)

logger = get_logger("agents.session")

__all__ = ["CONTROL_TOPIC", "MINUTES_TOPIC", "MeetingSession", "worker_stopping"]

REMOVED_REASONS = ("PARTICIPANT_REMOVED", "ROOM_DELETED", "ROOM_CLOSED")
"""Disconnect reasons that end the meeting (the server removed the captioner or the room)."""
TERMINATED = "parent process shutdown"
"""livekit-agents' shutdown reason when the job is ended from outside: the server's job
termination (captioner removed, room deleted) or the worker stopping."""
worker_stopping = threading.Event()
"""Set by the worker when it stops: its meetings stay live, to be continued."""


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
        self._disconnect_reason = ""
        self._shutdown_reason: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[Any]] = set()
        ctx.room.on("disconnected", self._on_disconnected)
        ctx.add_shutdown_callback(self._on_shutdown)

    def _on_disconnected(self, reason: Any = None) -> None:
        name = (
            rtc.DisconnectReason.Name(reason)  # type: ignore[arg-type]
            if isinstance(reason, int)
            else str(reason)
        )
        if not self._disconnect_reason:
            self._disconnect_reason = name

    async def _on_shutdown(self, reason: str) -> None:
        if not self._shutdown_reason.done():
            self._shutdown_reason.set_result(reason)

    async def _removed_by_server(self) -> bool:
        """Whether this job ends because the server removed the captioner or the room (not
        because the worker stops, the connection was lost, or the worker itself left)."""
        try:
            reason = await asyncio.wait_for(asyncio.shield(self._shutdown_reason), 2.0)
        except TimeoutError:
            reason = ""
        if self._disconnect_reason in REMOVED_REASONS:
            removed = True
        elif reason == TERMINATED:
            removed = not worker_stopping.is_set()
        else:
            removed = False
        logger.info(
            "meeting %s: job shutdown (%s; disconnect: %s): %s",
            self.recorder.meeting.id,
            reason or "unknown",
            self._disconnect_reason or "none",
            "the meeting ends" if removed else "the record stays live",
        )
        return removed

    def humans_changed(self, count: int) -> None:
        if count > 0:
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            return
        if self._linger is None and not self._ending:
            self._linger = spawn(
                self._end_after(self.settings.agent.linger_s),
                name=f"greffier-linger-{self.recorder.meeting.id}",
                logger=logger,
            )

    async def _end_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.end("everyone left")

    def on_data(self, packet: rtc.DataPacket) -> None:
        """Obey a ``greffier.control`` request signed with the API secret or sent by an
        allowed participant; ignore (and log, without names) any other."""
        if packet.topic != CONTROL_TOPIC:
            return
        lk = self.settings.livekit
        request = parse_request(
            packet.data, self.recorder.meeting.room, lk.api_secret.get_secret_value()
        )
        if request is None:
            logger.warning("ignoring a malformed control message")
            return
        sender = packet.participant.identity if packet.participant is not None else None
        if not request.signed and not allowed_sender(
            sender, self.settings.agent.control_identities
        ):
            logger.warning(
                "ignoring a %r control request from a sender that may not send one", request.action
            )
            return
        if request.action == "minutes":
            self._spawn(self._minutes_now())
        else:
            self._spawn(self.end("requested"))

    def _spawn(self, coro: Any) -> None:
        """Run a control request's work; its failure is logged (``core.log.spawn``)."""
        name = f"greffier-control-{self.recorder.meeting.id}"
        spawn(coro, name=name, logger=logger, tasks=self._tasks)

    async def _minutes_now(self) -> None:
        paths = await self.recorder.write_minutes(end=False)
        await self._announce(paths)

    async def _announce(self, paths: list[Any]) -> None:
        payload = json.dumps(
            {"meeting_id": self.recorder.meeting.id, "files": [p.name for p in paths]}
        )
        try:
            await self.ctx.room.local_participant.publish_data(
                payload, reliable=True, topic=MINUTES_TOPIC
            )
        except Exception as e:  # noqa: BLE001 - the minutes are written; only the notice is lost
            logger.warning(
                "meeting %s: announcing the minutes failed: %s",
                self.recorder.meeting.id,
                error_summary(e),
            )

    async def end(self, reason: str) -> None:
        """Store the last finals, refine shared microphones, write the minutes, leave."""
        if self._ending:
            return
        paths = await self._finish(reason)
        await self._announce(paths)
        self.ctx.shutdown(f"meeting ended: {reason}")

    async def _finish(self, reason: str) -> list[Any]:
        self._ending = True
        if self._linger is not None:
            self._linger.cancel()
        logger.info("meeting %s ends (%s)", self.recorder.meeting.id, reason)
        if self.captioner is not None:
            await self.captioner.aclose()
            await self._refine()
        return await self.recorder.write_minutes(end=True)

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
            except Exception as e:  # noqa: BLE001 - the live labels stay
                logger.error(
                    "end-of-meeting diarization of %s failed: %s",
                    track.track_sid,
                    error_summary(e),
                )
        if refined:
            await self.recorder.replace_segments(refined)

    async def aclose(self) -> None:
        """Job shutdown: keep every final stored; when the server removed the captioner or
        the room, also end the meeting (minutes written, record ended)."""
        if self._linger is not None:
            self._linger.cancel()
        if self._ending:
            return
        if await self._removed_by_server():
            await self._finish("removed by the server")
        elif self.captioner is not None:
            await self.captioner.aclose()
