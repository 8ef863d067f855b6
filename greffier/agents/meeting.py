"""The meeting record of a room: finals journaled, published, then stored; minutes at the end.

Order of a final: (1) appended to the meeting's local journal (``data_dir/journal/<meeting
id>.jsonl``, fsynced) — then the caption is published — (2) written to the transcript store
by the room's own writer, in order, retried with a doubling backoff (0.25 s up to
``store.retry_max_s``) while the store fails. Each room has its own store thread and writer,
so one slow or failing room never stalls another, and the event loop never waits for the
database. Once every journaled final is stored the journal is emptied; a journal left behind
(store down, worker killed) is replayed in order when any room of a worker on this data
directory next opens. Upserts make a replay harmless: nothing is doubled.

The journal is bounded (``store.journal_max_mb`` per meeting): past it, further finals wait
in memory only (lost if the process dies) and the log counts them; none is dropped silently.
Log lines name meetings, segment ids and counts, never text, names or identities.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, TypeVar

from greffier.core import metrics
from greffier.core.config import Settings
from greffier.core.errors import StoreDataError, StoreError, StoreSchemaError
from greffier.core.log import get_logger, spawn
from greffier.core.types import CaptionUpdate, Speaker, SpeakerTurn, TranscriptSegment, Word
from greffier.store.sql import MeetingRecord, TranscriptStore, describe_error
from greffier.subtitles.formats import write_all
from greffier.subtitles.minutes import assemble_minutes, local_time, minutes_stem

logger = get_logger("agents.meeting")

T = TypeVar("T")
RETRY_MIN_S = 0.25
HEARTBEAT_S = 30.0
"""A live record's activity is refreshed this often while its room is quiet."""
_READ_EXECUTOR = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="greffier-store")
_stores: dict[str, TranscriptStore] = {}
_stores_lock = threading.Lock()
_claimed: set[Path] = set()
"""Journal files a recorder of this process owns or replays now."""
_claimed_lock = threading.Lock()


def shared_store(url: str) -> TranscriptStore:
    """One store per database URL and process."""
    with _stores_lock:
        if url not in _stores:
            _stores[url] = TranscriptStore(url)
        return _stores[url]


async def in_store_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking store read on a store thread (writes go through a recorder)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_READ_EXECUTOR, functools.partial(fn, *args))


def segment_of(update: CaptionUpdate) -> TranscriptSegment:
    """A final caption as a stored segment."""
    return TranscriptSegment(
        segment_id=update.segment_id,
        speaker=update.speaker,
        start=update.start,
        end=update.end,
        text=update.text,
        language=update.language,
        words=update.words,
        track_sid=update.track_sid,
    )


# -- journal -------------------------------------------------------------------------------


def _entry(meeting_id: str, segment: TranscriptSegment) -> bytes:
    s = segment
    record = {
        "v": 1,
        "meeting_id": meeting_id,
        "id": s.segment_id,
        "identity": s.speaker.identity,
        "name": s.speaker.name,
        "label": s.speaker.label,
        "track_sid": s.track_sid,
        "start": s.start,
        "end": s.end,
        "language": s.language,
        "text": s.text,
        "words": [[w.start, w.end, w.text, w.probability] for w in s.words],
    }
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


def read_journal(path: Path) -> list[tuple[str, TranscriptSegment]]:
    """The entries of a journal file in order: ``(meeting id, segment)``; a torn last line
    (a crash while appending) is skipped."""
    out = []
    for line in path.read_bytes().splitlines():
        try:
            r = json.loads(line)
            out.append(
                (
                    r["meeting_id"],
                    TranscriptSegment(
                        segment_id=r["id"],
                        speaker=Speaker(r["identity"], r["name"], r["label"]),
                        start=r["start"],
                        end=r["end"],
                        text=r["text"],
                        language=r["language"],
                        words=tuple(Word(*w) for w in r["words"]),
                        track_sid=r["track_sid"],
                    ),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


class FinalJournal:
    """The append-only, fsynced local journal of one meeting's finals not yet stored.

    The owner holds an exclusive ``flock`` on the file, so no other recorder replays it while
    it lives; the lock goes with the process. Calls block (the recorder runs them on a thread).
    """

    def __init__(self, path: Path, meeting_id: str, max_bytes: int) -> None:
        self.path = path
        self.meeting_id = meeting_id
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = path.open("ab")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Another live recorder of this meeting holds it (a captioner being replaced, see
            # agents.takeover): journal beside it, never wait (this runs on the room's loop).
            self._file.close()
            self.path = path = path.with_name(f"{path.stem}.{os.urandom(3).hex()}{path.suffix}")
            self._file = path.open("ab")
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = self._file.seek(0, os.SEEK_END)
        self._pending: set[int] = set()
        self._seq = 0
        self._lock = threading.Lock()
        self.overflow = 0
        """Finals not journaled because the journal was full."""

    def append(self, segment: TranscriptSegment) -> int | None:
        """Journal a final (fsynced); its sequence number, or None when the journal is full."""
        data = _entry(self.meeting_id, segment)
        with self._lock:
            if self.size + len(data) > self.max_bytes:
                self.overflow += 1
                return None
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.size += len(data)
            self._seq += 1
            self._pending.add(self._seq)
            return self._seq

    def stored(self, seqs: Iterable[int]) -> None:
        """These entries are in the store; once none is left, the journal is emptied."""
        with self._lock:
            self._pending.difference_update(seqs)
            if not self._pending and self.size:
                self._file.truncate(0)
                self._file.flush()
                os.fsync(self._file.fileno())
                self.size = 0

    def set_aside(self, seq: int | None, segment: TranscriptSegment) -> None:
        """Move a final the store refuses to ``<meeting id>.rejected`` (kept for inspection,
        never replayed) so the journal can empty."""
        with self.path.with_suffix(".rejected").open("ab") as f:
            f.write(_entry(self.meeting_id, segment))
            f.flush()
            os.fsync(f.fileno())
        if seq is not None:
            self.stored([seq])

    def close(self) -> None:
        """Release the journal; an empty one is removed."""
        with self._lock:
            if self._file.closed:
                return
            if self.size == 0:
                self.path.unlink(missing_ok=True)
            self._file.close()


def replay_journals(folder: Path, store: TranscriptStore) -> int:
    """Store the entries of every journal in ``folder`` that no live recorder owns, in order,
    and remove those journals; returns how many entries were written. A journal the database
    refuses for its content is stored entry by entry, the refused ones appended to
    ``<meeting id>.rejected`` (and logged); a failing store raises StoreError. Blocking."""
    written = 0
    try:
        paths = sorted(folder.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))
    except OSError:
        paths = []  # a journal went away while listing: the next open replays the rest
    for path in paths:
        with _claimed_lock:
            if path in _claimed:
                continue
            _claimed.add(path)
        try:
            with path.open("r+b") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live recorder of another process owns it
                entries = read_journal(path)
                by_meeting: dict[str, list[TranscriptSegment]] = {}
                for meeting_id, segment in entries:
                    by_meeting.setdefault(meeting_id, []).append(segment)
                for meeting_id, segments in by_meeting.items():
                    try:
                        store.add_segments(meeting_id, segments)
                    except StoreDataError:
                        _store_each(store, meeting_id, segments, path.with_suffix(".rejected"))
                path.unlink(missing_ok=True)
                written += len(entries)
                if entries:
                    logger.info("journal %s replayed: %d final(s) stored", path.stem, len(entries))
        finally:
            with _claimed_lock:
                _claimed.discard(path)
    return written


def _store_each(
    store: TranscriptStore, meeting_id: str, segments: list[TranscriptSegment], aside: Path
) -> None:
    for segment in segments:
        try:
            store.add_segments(meeting_id, [segment])
        except StoreDataError as e:
            logger.error(
                "journal %s: the store refuses final %s (%s); set aside",
                aside.stem,
                segment.segment_id,
                e.message,
            )
            with aside.open("ab") as f:
                f.write(_entry(meeting_id, segment))
                f.flush()
                os.fsync(f.fileno())


# -- recorder ------------------------------------------------------------------------------


class MeetingRecorder:
    """Journals, stores and assembles one room's finals (see the module's docstring)."""

    def __init__(
        self,
        store: TranscriptStore,
        meeting: MeetingRecord,
        settings: Settings,
        executor: concurrent.futures.ThreadPoolExecutor | None = None,
    ) -> None:
        self.store = store
        self.meeting = meeting
        self.settings = settings
        self._executor = executor or _room_executor()
        self._journal_executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="greffier-journal"
        )
        path = journal_folder(settings) / f"{meeting.id}.jsonl"
        with _claimed_lock:
            _claimed.add(path)
        self.journal = FinalJournal(
            path, meeting.id, int(settings.store.journal_max_mb * 1024 * 1024)
        )
        if self.journal.path != path:
            with _claimed_lock:
                _claimed.discard(path)
                _claimed.add(self.journal.path)
        self._queue: asyncio.Queue[tuple[int | None, TranscriptSegment]] = asyncio.Queue()
        self._unstored: dict[str, TranscriptSegment] = {}
        """Finals not yet stored, by segment id (for minutes written while the store is down)."""
        self._writer: asyncio.Task[None] | None = None
        self.stored = 0
        self.failures = 0
        """Failed store attempts (each retried)."""
        self.rejected = 0
        """Finals the store refused for their content (kept in the journal, not retried)."""

    @classmethod
    async def open(cls, settings: Settings, room: str) -> MeetingRecorder:
        """The room's live meeting record, continued (or a new one when it is stale or
        absent), with journals left on this data directory replayed first. Retries while
        the store fails, for ``store.flush_timeout_s`` at most, then raises StoreError."""
        executor = _room_executor()
        loop = asyncio.get_running_loop()

        def run(fn: Callable[..., T], *args: Any, **kw: Any) -> asyncio.Future[T]:
            return loop.run_in_executor(executor, functools.partial(fn, *args, **kw))

        stale_after = settings.agent.linger_s + settings.agent.stale_margin_s
        deadline = time.monotonic() + settings.store.flush_timeout_s
        delay = RETRY_MIN_S
        while True:
            try:
                store = await run(shared_store, settings.store_url)
                await run(replay_journals, journal_folder(settings), store)
                meeting = await run(store.open_meeting, room, stale_after_s=stale_after)
                break
            except StoreSchemaError:
                executor.shutdown(wait=False)
                raise
            except StoreError as e:
                if time.monotonic() + delay > deadline:
                    executor.shutdown(wait=False)
                    raise
                logger.warning(
                    "opening the meeting record failed (%s); retrying in %.1f s", e.message, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.store.retry_max_s)
        recorder = cls(store, meeting, settings, executor)
        recorder.start()
        return recorder

    def start(self) -> None:
        """Start the room's store writer (on the running loop)."""
        if self._writer is None:
            self._writer = spawn(
                self._write_loop(), name=f"greffier-store-{self.meeting.id}", logger=logger
            )

    def _run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def on_final(self, update: CaptionUpdate) -> None:
        """Journal a final (returns once it is on disk); the store write follows, in order."""
        segment = segment_of(update)
        loop = asyncio.get_running_loop()
        try:
            seq = await loop.run_in_executor(self._journal_executor, self.journal.append, segment)
        except OSError as e:
            seq = None
            logger.error(
                "meeting %s: journaling final %s failed (%s); it waits in memory",
                self.meeting.id,
                segment.segment_id,
                type(e).__name__,
            )
        if seq is None and self.journal.overflow and _power_of_two(self.journal.overflow):
            logger.warning(
                "meeting %s: the journal is full (%d bytes); %d final(s) wait in memory only",
                self.meeting.id,
                self.journal.size,
                self.journal.overflow,
            )
        self._unstored[segment.segment_id] = segment
        self._queue.put_nowait((seq, segment))

    @property
    def pending(self) -> int:
        """Finals not yet stored."""
        return len(self._unstored)

    async def _write_loop(self) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), HEARTBEAT_S)
            except TimeoutError:
                with contextlib.suppress(StoreError):
                    await self._run(self.store.touch, self.meeting.id)
                continue
            batch = [first]
            while not self._queue.empty() and len(batch) < 64:
                batch.append(self._queue.get_nowait())
            while True:
                try:
                    await self._run(self.store.add_segments, self.meeting.id, [s for _, s in batch])
                    break
                except Exception as e:  # noqa: BLE001 - retried; the class only is logged
                    self.failures += 1
                    metrics.store_error()
                    if _content_error(e):
                        batch = await self._one_by_one(batch)
                        break
                    if _power_of_two(self.failures):
                        logger.warning(
                            "meeting %s: storing %d final(s) failed (%s), attempt %d; "
                            "retrying in %.2f s (%d pending)",
                            self.meeting.id,
                            len(batch),
                            _reason(e),
                            self.failures,
                            delay,
                            self.pending,
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.store.retry_max_s)
            if delay > RETRY_MIN_S:
                logger.info(
                    "meeting %s: the store answers again (%d pending)",
                    self.meeting.id,
                    self.pending - len(batch),
                )
            delay = RETRY_MIN_S
            for _, segment in batch:
                self._unstored.pop(segment.segment_id, None)
            self.stored += len(batch)
            seqs = [seq for seq, _ in batch if seq is not None]
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._journal_executor, self.journal.stored, seqs)
            for _ in batch:
                self._queue.task_done()

    async def _one_by_one(
        self, batch: list[tuple[int | None, TranscriptSegment]]
    ) -> list[tuple[int | None, TranscriptSegment]]:
        """Store a batch the database refused for its content final by final; a final it
        refuses again is set aside (``<meeting id>.rejected`` beside the journal), counted."""
        stored = []
        loop = asyncio.get_running_loop()
        for seq, segment in batch:
            delay = RETRY_MIN_S
            while True:
                try:
                    await self._run(self.store.add_segments, self.meeting.id, [segment])
                    stored.append((seq, segment))
                    break
                except Exception as e:  # noqa: BLE001 - the class only is logged
                    metrics.store_error()
                    if not _content_error(e):
                        await asyncio.sleep(delay)  # the store itself fails: retry
                        delay = min(delay * 2, self.settings.store.retry_max_s)
                        continue
                    self.rejected += 1
                    logger.error(
                        "meeting %s: the store refuses final %s (%s); set aside in "
                        "the journal folder",
                        self.meeting.id,
                        segment.segment_id,
                        _reason(e),
                    )
                    await loop.run_in_executor(
                        self._journal_executor, self.journal.set_aside, seq, segment
                    )
                    self._unstored.pop(segment.segment_id, None)
                    self._queue.task_done()
                    break
        return stored

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every final so far is stored; False if ``timeout`` passed first."""
        wait = self.settings.store.flush_timeout_s if timeout is None else timeout
        try:
            await asyncio.wait_for(self._queue.join(), wait)
            return True
        except TimeoutError:
            logger.warning(
                "meeting %s: %d final(s) not stored after %.0f s; they stay in the journal",
                self.meeting.id,
                self.pending,
                wait,
            )
            return False

    async def replace_segments(self, segments: list[TranscriptSegment]) -> None:
        """Store refined segments of some tracks (end-of-meeting diarization), after the
        pending finals; skipped (live labels kept) when the store does not answer."""
        if not await self.flush():
            return
        try:
            await self._run(self.store.replace_segments, self.meeting.id, segments)
        except StoreError as e:
            logger.error(
                "meeting %s: storing refined speakers failed (%s); the live labels stay",
                self.meeting.id,
                e.message,
            )

    async def write_minutes(
        self, *, end: bool, turns: list[SpeakerTurn] | None = None
    ) -> list[Path]:
        """Assemble the minutes (store, plus finals not stored yet) and write the five formats;
        ``end`` closes the meeting record (finals still journaled join it when replayed)."""
        await self.flush()
        try:
            segments = await self._run(self.store.segments_of, self.meeting.id)
        except StoreError as e:
            logger.error(
                "meeting %s: reading the stored finals failed (%s); the minutes hold "
                "this worker's unstored finals only",
                self.meeting.id,
                e.message,
            )
            segments = []
        known = {s.segment_id for s in segments}
        segments += [s for s in list(self._unstored.values()) if s.segment_id not in known]
        minutes = assemble_minutes(
            segments,
            title=f"Meeting {self.meeting.room}",
            started_at=local_time(self.meeting.started_at),
            turns=turns,
        )
        folder = self.settings.data_dir / "minutes" / self.meeting.id
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / minutes_stem(self.meeting.room, minutes.started_at)
        paths = await asyncio.to_thread(write_all, minutes, stem)
        if end:
            try:
                await self._run(self.store.end_meeting, self.meeting.id)
            except StoreError as e:
                logger.error(
                    "meeting %s: ending the record failed (%s)", self.meeting.id, e.message
                )
        logger.info("minutes of meeting %s written (%d segments)", self.meeting.id, len(segments))
        return paths

    async def aclose(self) -> None:
        """Wait (bounded) for the pending finals, then stop; unstored ones stay journaled."""
        await self.flush()
        if self.journal.overflow:
            logger.warning(
                "meeting %s: %d final(s) were not journaled (journal full); %d of "
                "all finals not stored",
                self.meeting.id,
                self.journal.overflow,
                self.pending,
            )
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._journal_executor, self.journal.close)
        with _claimed_lock:
            _claimed.discard(self.journal.path)
        self._journal_executor.shutdown(wait=False)
        self._executor.shutdown(wait=False)


def journal_folder(settings: Settings) -> Path:
    return settings.data_dir / "journal"


def _room_executor() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="greffier-room-store")


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _reason(e: BaseException) -> str:
    return e.message if isinstance(e, StoreError) else describe_error(e)


def _content_error(e: BaseException) -> bool:
    """A refusal that retrying cannot fix (the data, not the database)."""
    return isinstance(e, StoreDataError)
