"""Rooms whose captioner died are dispatched again: liveness in the store, not in LiveKit.

livekit-server (open source, single node or not) never dispatches an agent job again when its
worker dies (``restart_policy`` is LiveKit Cloud only), and it keeps a SIGKILLed worker's
participant listed as active for about 20 s (its ICE timeouts). So each worker:

- beats for the meetings it holds: every :data:`HEARTBEAT_S` the live records of its rooms get
  their ``active_at`` refreshed (one UPDATE per worker, on a store thread);
- sweeps: a live record not refreshed for :data:`ORPHANED_AFTER_S`, of a room this worker does
  not hold, whose LiveKit room still has a person in it, is an orphan: the worker claims it
  (refreshes it, so other sweepers wait) and asks the server for a new dispatch of its agent
  name, naming the captioners still listed there in the dispatch metadata
  (``{"greffier.replaces": [...]}``).

The new captioner ignores the replaced identities (when refusing a second captioner and in
the tie-break) and carries them in its ``greffier.replaces`` attribute; a replaced captioner
that was alive after all (a stalled store) sees it and leaves, so one captioner stays. The
meeting record is continued (it is live), and the dead worker's journal is replayed by the
next recorder opened on its data directory. A record ended on purpose (everyone left, caption
stop) is never live, so never dispatched again. Nothing here runs unless the store is shared by
the workers (PostgreSQL, or one SQLite file on one machine).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import sqlalchemy as sa

from greffier.core.errors import StoreError
from greffier.core.log import get_logger
from greffier.store.sql import TranscriptStore
from greffier.subtitles.protocol import AGENT_NAME_ATTRIBUTE

logger = get_logger("agents.takeover")

HEARTBEAT_S = 2.0
"""How often a worker refreshes the live records of the rooms it holds."""
ORPHANED_AFTER_S = 7.0
"""A live record not refreshed for this long has lost its captioner (three missed beats)."""
MAX_TAKEOVERS = 3
"""Dispatches of one meeting a worker sends within :data:`TAKEOVER_WINDOW_S` at most (bounds
the churn when the room's captioner records elsewhere, e.g. another deployment's store under
the same agent name, or when no worker can take the room)."""
TAKEOVER_WINDOW_S = 600.0
REPLACES_KEY = "greffier.replaces"
"""Dispatch metadata key and participant attribute: the captioner identities replaced."""
_AGENT_KIND = 4


def replaced_identities(metadata: str | None) -> set[str]:
    """The captioner identities a dispatch (its metadata) or a captioner (its
    ``greffier.replaces`` attribute, comma-separated) replaces; empty when none or
    malformed."""
    if not metadata:
        return set()
    text = metadata.strip()
    if text.startswith(("{", "[")):
        try:
            value = json.loads(text).get(REPLACES_KEY, [])
        except (ValueError, AttributeError):
            return set()
        return {str(v) for v in value} if isinstance(value, list) else set()
    return {part for part in text.split(",") if part}


def replaces_attribute(identities: set[str]) -> str:
    return ",".join(sorted(identities))


def beat(store: TranscriptStore, rooms: list[str], now: float, fresh_s: float) -> int:
    """Refresh the live records of ``rooms`` that are not stale (active within ``fresh_s``:
    a stale record is the store's to close, not to revive). Blocking; returns the rows."""
    if not rooms:
        return 0
    m = store.meetings
    with store.engine.begin() as conn:
        result = conn.execute(
            m.update()
            .where(m.c.room.in_(rooms), m.c.ended_at.is_(None), m.c.active_at >= now - fresh_s)
            .values(active_at=now)
        )
    return int(result.rowcount or 0)


def orphans(
    store: TranscriptStore, now: float, orphaned_after_s: float, fresh_s: float
) -> list[tuple[str, str]]:
    """``(meeting id, room)`` of live records silent for ``orphaned_after_s`` but not stale
    (active within ``fresh_s``). Blocking."""
    m = store.meetings
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.c.id, m.c.room).where(
                m.c.ended_at.is_(None),
                m.c.active_at < now - orphaned_after_s,
                m.c.active_at >= now - fresh_s,
            )
        )
        return [(str(r.id), str(r.room)) for r in rows]


def claim(store: TranscriptStore, meeting_id: str, seen_before: float, now: float) -> bool:
    """Refresh an orphan's record unless another sweeper did since ``seen_before``; True when
    this worker claimed it. Blocking."""
    m = store.meetings
    with store.engine.begin() as conn:
        result = conn.execute(
            m.update()
            .where(m.c.id == meeting_id, m.c.ended_at.is_(None), m.c.active_at < seen_before)
            .values(active_at=now)
        )
    return bool(result.rowcount)


class Takeover:
    """A worker's heartbeat for its rooms and sweep for orphaned ones (see the module)."""

    def __init__(
        self,
        store: Callable[[], TranscriptStore],
        *,
        held_rooms: Callable[[], list[str]],
        lk_url: str,
        api_key: str,
        api_secret: str,
        agent_name: str,
        stale_after_s: float,
        heartbeat_s: float = HEARTBEAT_S,
        orphaned_after_s: float = ORPHANED_AFTER_S,
    ) -> None:
        self._store = store
        self.held_rooms = held_rooms
        self.lk_url = lk_url
        self.api_key = api_key
        self.api_secret = api_secret
        self.agent_name = agent_name
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.orphaned_after_s = orphaned_after_s
        self.dispatched = 0
        """Rooms this worker dispatched again."""
        self._sent: dict[str, list[float]] = {}
        self._failing = False

    async def run(self) -> None:
        """Beat and sweep until cancelled; store or server failures are logged (class only)
        and retried at the next beat."""
        while True:
            try:
                await self.tick()
                if self._failing:
                    logger.info("takeover: the store and the server answer again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - retried at the next beat
                if not self._failing:
                    logger.warning("takeover: a beat or sweep failed (%s)", type(e).__name__)
                self._failing = True
            await asyncio.sleep(self.heartbeat_s)

    async def tick(self) -> None:
        store = await asyncio.to_thread(self._store)
        now = time.time()
        try:
            await asyncio.to_thread(beat, store, self.held_rooms(), now, self.stale_after_s)
        except sa.exc.SQLAlchemyError as e:
            # Our own beat fails: the store is what fails, not the other workers; judging
            # their records now would take rooms from live captioners.
            raise StoreError("the heartbeat could not be written") from e
        found = await asyncio.to_thread(
            orphans, store, now, self.orphaned_after_s, self.stale_after_s
        )
        held = set(self.held_rooms())
        for meeting_id, room in found:
            if room in held or not self._may_send(meeting_id, now):
                continue
            await self._take(store, meeting_id, room, now)

    def _may_send(self, meeting_id: str, now: float) -> bool:
        sent = [t for t in self._sent.get(meeting_id, []) if now - t < TAKEOVER_WINDOW_S]
        self._sent[meeting_id] = sent
        if not sent:
            del self._sent[meeting_id]
        return len(sent) < MAX_TAKEOVERS

    async def _take(self, store: TranscriptStore, meeting_id: str, room: str, now: float) -> None:
        from livekit import api

        client = api.LiveKitAPI(self.lk_url, self.api_key, self.api_secret)
        try:
            try:
                resp = await client.room.list_participants(api.ListParticipantsRequest(room=room))
            except api.TwirpError:
                return  # the room is gone: nobody to caption; the record goes stale
            people = [p for p in resp.participants if int(p.kind) != _AGENT_KIND]
            if not people:
                return  # everyone left while the captioner was dead: nothing to caption
            listed = [
                p.identity
                for p in resp.participants
                if int(p.kind) == _AGENT_KIND
                and dict(p.attributes).get(AGENT_NAME_ATTRIBUTE) == self.agent_name
            ]
            if not await asyncio.to_thread(
                claim, store, meeting_id, now - self.orphaned_after_s, time.time()
            ):
                return  # another worker claimed it first
            await client.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=self.agent_name,
                    room=room,
                    metadata=json.dumps({REPLACES_KEY: sorted(listed)}),
                )
            )
            self.dispatched += 1
            self._sent.setdefault(meeting_id, []).append(now)
            if len(self._sent[meeting_id]) == MAX_TAKEOVERS:
                logger.warning(
                    "meeting %s: dispatched again %d times in %.0f s; not again before that",
                    meeting_id,
                    MAX_TAKEOVERS,
                    TAKEOVER_WINDOW_S,
                )
            logger.warning(
                "meeting %s lost its captioner (no heartbeat for %.0f s): dispatched again",
                meeting_id,
                self.orphaned_after_s,
            )
        finally:
            await client.aclose()
