"""The meeting record of a room: finals stored as they come, minutes at the end.

Every final is committed to the transcript store before it is published, on one thread of its
own (ordered, off the event loop), so a worker killed at any moment loses nothing it published.
A new worker in the same room continues the live record (same id, same clock).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from greffier.core.config import Settings
from greffier.core.log import get_logger
from greffier.core.types import CaptionUpdate, SpeakerTurn, TranscriptSegment
from greffier.store.sql import MeetingRecord, TranscriptStore
from greffier.subtitles.formats import write_all
from greffier.subtitles.minutes import assemble_minutes

logger = get_logger("agents.meeting")

T = TypeVar("T")
_STORE_EXECUTOR = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="greffier-store")
_stores: dict[str, TranscriptStore] = {}
_stores_lock = threading.Lock()


def shared_store(url: str) -> TranscriptStore:
    """One store per database URL and process."""
    with _stores_lock:
        if url not in _stores:
            _stores[url] = TranscriptStore(url)
        return _stores[url]


async def in_store_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking store call on the store's own thread."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_STORE_EXECUTOR, functools.partial(fn, *args))


def segment_of(update: CaptionUpdate) -> TranscriptSegment:
    """A final caption as a stored segment."""
    return TranscriptSegment(
        segment_id=update.segment_id, speaker=update.speaker, start=update.start,
        end=update.end, text=update.text, language=update.language, words=update.words,
        track_sid=update.track_sid,
    )


def minutes_stem(meeting: MeetingRecord) -> str:
    """``<room>-<YYYYMMDD-HHMM>``, safe as a file name."""
    started = dt.datetime.fromtimestamp(meeting.started_at, tz=dt.UTC)
    room = re.sub(r"[^A-Za-z0-9._-]+", "_", meeting.room).strip("_") or "meeting"
    return f"{room}-{started:%Y%m%d-%H%M}"


class MeetingRecorder:
    """Writes one room's finals and assembles its minutes."""

    def __init__(self, store: TranscriptStore, meeting: MeetingRecord, settings: Settings) -> None:
        self.store = store
        self.meeting = meeting
        self.settings = settings
        self.stored = 0

    @classmethod
    async def open(cls, settings: Settings, room: str) -> MeetingRecorder:
        """The room's live meeting record, continued, or a new one."""
        store = await in_store_thread(shared_store, settings.store_url)
        meeting = await in_store_thread(store.open_meeting, room)
        return cls(store, meeting, settings)

    async def on_final(self, update: CaptionUpdate) -> None:
        """Store a final (returns once it is committed)."""
        await in_store_thread(self.store.add_segment, self.meeting.id, segment_of(update))
        self.stored += 1

    async def replace_segments(self, segments: list[TranscriptSegment]) -> None:
        """Store refined segments of some tracks (end-of-meeting diarization)."""
        await in_store_thread(self.store.relabel, self.meeting.id, segments)

    async def write_minutes(
        self, *, end: bool, turns: list[SpeakerTurn] | None = None
    ) -> list[Path]:
        """Assemble the minutes from the store and write the five formats; ``end`` closes the
        meeting record."""
        segments = await in_store_thread(self.store.segments_of, self.meeting.id)
        minutes = assemble_minutes(
            segments,
            title=f"Meeting {self.meeting.room}",
            started_at=dt.datetime.fromtimestamp(self.meeting.started_at, tz=dt.UTC),
            turns=turns,
        )
        folder = self.settings.data_dir / "minutes" / self.meeting.id
        folder.mkdir(parents=True, exist_ok=True)
        paths = await asyncio.to_thread(write_all, minutes, folder / minutes_stem(self.meeting))
        if end:
            await in_store_thread(self.store.end_meeting, self.meeting.id)
        logger.info("minutes of meeting %s written (%d segments)", self.meeting.id, len(segments))
        return paths
