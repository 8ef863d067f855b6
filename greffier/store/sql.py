"""The transcript store: every final segment, written as it is produced.

SQLAlchemy Core over SQLite (a file, by default: WAL journal, so a worker killed with SIGKILL
loses nothing it had committed) or PostgreSQL (by URL). A meeting record is per room: while it
is live, a new worker for the same room continues it (same id, same start time). Calls block:
the worker runs them on its own thread (see ``greffier.agents``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greffier.core.errors import MissingDependencyError, StoreError
from greffier.core.log import get_logger
from greffier.core.types import Speaker, TranscriptSegment, Word

logger = get_logger("store")


@dataclass(frozen=True, slots=True)
class MeetingRecord:
    """One meeting of one room."""

    id: str
    room: str
    started_at: float
    """Unix time; segment times count from it."""
    ended_at: float | None = None
    title: str = ""

    @property
    def live(self) -> bool:
        return self.ended_at is None


class TranscriptStore:
    """Meetings and their final segments in a SQL database."""

    def __init__(self, url: str) -> None:
        try:
            import sqlalchemy as sa
        except ImportError as e:
            raise MissingDependencyError.for_extra("sqlalchemy", "service") from e
        self._sa = sa
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(
                parents=True, exist_ok=True
            )
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        try:
            self._engine = sa.create_engine(url, pool_pre_ping=True, future=True)
        except (sa.exc.ArgumentError, ImportError) as e:
            raise StoreError(f"unusable store URL: {e}", hint="use sqlite:///path or "
                             "postgresql://user@host/db") from e
        if self._engine.dialect.name == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        md = sa.MetaData()
        self.meetings = sa.Table(
            "greffier_meetings", md,
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("room", sa.String(256), nullable=False, index=True),
            sa.Column("title", sa.Text, nullable=False, default=""),
            sa.Column("started_at", sa.Float, nullable=False),
            sa.Column("ended_at", sa.Float, nullable=True),
        )
        self.segments = sa.Table(
            "greffier_segments", md,
            sa.Column("id", sa.String(128), primary_key=True),
            sa.Column("meeting_id", sa.String(64), sa.ForeignKey("greffier_meetings.id"),
                      nullable=False, index=True),
            sa.Column("speaker_identity", sa.String(256), nullable=False),
            sa.Column("speaker_name", sa.Text, nullable=False),
            sa.Column("speaker_label", sa.String(64), nullable=True),
            sa.Column("track_sid", sa.String(128), nullable=False, default=""),
            sa.Column("start", sa.Float, nullable=False),
            sa.Column("end", sa.Float, nullable=False),
            sa.Column("language", sa.String(16), nullable=False, default=""),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("words", sa.Text, nullable=False, default="[]"),
            sa.Column("created_at", sa.Float, nullable=False),
        )
        self._lock = threading.Lock()
        try:
            md.create_all(self._engine)
        except sa.exc.SQLAlchemyError as e:
            raise StoreError(f"cannot open the transcript store: {e.__class__.__name__}: "
                             f"{str(e).splitlines()[0]}",
                             hint="check GREFFIER_STORE__URL and that the database runs") from e

    # -- meetings ------------------------------------------------------------------------

    def open_meeting(self, room: str, *, now: float | None = None, title: str = "") -> (
        MeetingRecord
    ):
        """The room's live meeting, continued, or a new one."""
        sa = self._sa
        with self._lock, self._engine.begin() as conn:
            row = conn.execute(
                sa.select(self.meetings).where(
                    self.meetings.c.room == room, self.meetings.c.ended_at.is_(None)
                ).order_by(self.meetings.c.started_at.desc()).limit(1)
            ).first()
            if row is not None:
                return _meeting(row)
            meeting = MeetingRecord(
                id=uuid.uuid4().hex[:16], room=room, started_at=now or time.time(),
                title=title or room,
            )
            conn.execute(self.meetings.insert().values(
                id=meeting.id, room=room, title=meeting.title, started_at=meeting.started_at,
                ended_at=None,
            ))
            return meeting

    def end_meeting(self, meeting_id: str, *, now: float | None = None) -> None:
        with self._lock, self._engine.begin() as conn:
            conn.execute(self.meetings.update().where(self.meetings.c.id == meeting_id)
                         .values(ended_at=now or time.time()))

    def meeting(self, meeting_id: str) -> MeetingRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(self._sa.select(self.meetings).where(
                self.meetings.c.id == meeting_id)).first()
        return _meeting(row) if row is not None else None

    def list_meetings(self, room: str | None = None, limit: int = 100) -> list[MeetingRecord]:
        sa = self._sa
        query = sa.select(self.meetings).order_by(self.meetings.c.started_at.desc()).limit(limit)
        if room is not None:
            query = query.where(self.meetings.c.room == room)
        with self._engine.connect() as conn:
            return [_meeting(r) for r in conn.execute(query)]

    # -- segments ------------------------------------------------------------------------

    def add_segment(self, meeting_id: str, segment: TranscriptSegment) -> None:
        """Write one final segment (committed before this returns)."""
        values = {
            "id": segment.segment_id, "meeting_id": meeting_id,
            "speaker_identity": segment.speaker.identity, "speaker_name": segment.speaker.name,
            "speaker_label": segment.speaker.label, "track_sid": segment.track_sid,
            "start": segment.start, "end": segment.end, "language": segment.language,
            "text": segment.text, "words": _dump_words(segment.words),
            "created_at": time.time(),
        }
        sa = self._sa
        try:
            with self._lock, self._engine.begin() as conn:
                exists = conn.execute(sa.select(self.segments.c.id).where(
                    self.segments.c.id == segment.segment_id)).first()
                if exists:
                    conn.execute(self.segments.update().where(
                        self.segments.c.id == segment.segment_id).values(**values))
                else:
                    conn.execute(self.segments.insert().values(**values))
        except sa.exc.SQLAlchemyError as e:
            raise StoreError(f"writing segment {segment.segment_id} failed: "
                             f"{e.__class__.__name__}") from e

    def relabel(self, meeting_id: str, segments: Sequence[TranscriptSegment]) -> None:
        """Replace a meeting's segments of some tracks (end-of-meeting diarization)."""
        tracks = {s.track_sid for s in segments}
        with self._lock, self._engine.begin() as conn:
            conn.execute(self.segments.delete().where(
                self.segments.c.meeting_id == meeting_id,
                self.segments.c.track_sid.in_(tracks)))
            now = time.time()
            for s in segments:
                conn.execute(self.segments.insert().values(
                    id=s.segment_id, meeting_id=meeting_id, speaker_identity=s.speaker.identity,
                    speaker_name=s.speaker.name, speaker_label=s.speaker.label,
                    track_sid=s.track_sid, start=s.start, end=s.end, language=s.language,
                    text=s.text, words=_dump_words(s.words), created_at=now))

    def segments_of(self, meeting_id: str) -> list[TranscriptSegment]:
        """A meeting's final segments in time order."""
        sa = self._sa
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(self.segments).where(
                self.segments.c.meeting_id == meeting_id).order_by(
                self.segments.c.start, self.segments.c.id))
            return [_segment(r) for r in rows]

    def close(self) -> None:
        self._engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _dump_words(words: Sequence[Word]) -> str:
    return json.dumps([[round(w.start, 3), round(w.end, 3), w.text, round(w.probability, 3)]
                       for w in words], ensure_ascii=False)


def _meeting(row: Any) -> MeetingRecord:
    m = row._mapping
    return MeetingRecord(m["id"], m["room"], m["started_at"], m["ended_at"], m["title"])


def _segment(row: Any) -> TranscriptSegment:
    m = row._mapping
    words = tuple(Word(s, e, t, p) for s, e, t, p in json.loads(m["words"] or "[]"))
    return TranscriptSegment(
        segment_id=m["id"],
        speaker=Speaker(m["speaker_identity"], m["speaker_name"], m["speaker_label"]),
        start=m["start"], end=m["end"], text=m["text"], language=m["language"],
        words=words, track_sid=m["track_sid"],
    )
