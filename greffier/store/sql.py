"""The transcript store: every final segment, written as it is produced.

SQLAlchemy Core over SQLite (a file, by default: WAL journal, so a worker killed with SIGKILL
loses nothing it had committed) or PostgreSQL (by URL). The schema is versioned with Alembic
(``greffier/store/migrations``): opening a store upgrades it to the newest version, adopts a
database of the first, unversioned schema, and refuses one of a version this code does not
know (:class:`~greffier.core.errors.StoreSchemaError`).

The database keeps the invariants: at most one live meeting record per room (a partial unique
index on ``room`` where ``ended_at`` is null; :meth:`TranscriptStore.open_meeting` is an
atomic insert-or-get) and one row per segment of a meeting (primary key ``(meeting_id, id)``,
written by upsert, so a replayed final is never doubled). A live record whose last activity
is older than ``stale_after_s`` is closed, not continued.

Errors never carry transcript text, names or identities: the engine hides bound parameters
and :class:`~greffier.core.errors.StoreError` messages name only the exception class and the
database's error code. Calls block: callers run them on threads (see ``greffier.agents``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greffier.core.errors import (
    MissingDependencyError,
    StoreDataError,
    StoreError,
    StoreSchemaError,
)
from greffier.core.log import get_logger
from greffier.core.types import Speaker, TranscriptSegment, Word

try:
    import sqlalchemy as sa
except ImportError as e:  # pragma: no cover - the service and worker extras carry it
    raise MissingDependencyError.for_extra("sqlalchemy", "service") from e

logger = get_logger("store")

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE_REVISION = "0001_baseline"
"""The unversioned schema of greffier 0.1 (a database without a version table is stamped so)."""
_PG_MIGRATION_LOCK = 0x67726566  # "gref": advisory lock serialising concurrent upgrades

_METADATA = sa.MetaData()

meetings_table = sa.Table(
    "greffier_meetings",
    _METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("room", sa.String(256), nullable=False, index=True),
    sa.Column("title", sa.Text, nullable=False, default=""),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("active_at", sa.Float, nullable=True),
    # Unix time of the last activity (a segment written, or a live captioner's heartbeat).
)
sa.Index(
    "uq_greffier_meetings_live_room",
    meetings_table.c.room,
    unique=True,
    sqlite_where=meetings_table.c.ended_at.is_(None),
    postgresql_where=meetings_table.c.ended_at.is_(None),
)

segments_table = sa.Table(
    "greffier_segments",
    _METADATA,
    sa.Column(
        "meeting_id",
        sa.String(64),
        sa.ForeignKey("greffier_meetings.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("id", sa.String(128), nullable=False),
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
    sa.PrimaryKeyConstraint("meeting_id", "id", name="pk_greffier_segments"),
)


def metadata() -> sa.MetaData:
    """The one ``MetaData`` of every greffier table (the jobs table joins it)."""
    return _METADATA


def full_metadata() -> sa.MetaData:
    """:func:`metadata` with every table registered (what the migrations must produce)."""
    from greffier.store.jobs import jobs_table

    jobs_table(_METADATA)
    return _METADATA


@dataclass(frozen=True, slots=True)
class MeetingRecord:
    """One meeting of one room."""

    id: str
    room: str
    started_at: float
    """Unix time; segment times count from it."""
    ended_at: float | None = None
    title: str = ""
    active_at: float | None = None
    """Unix time of the last activity (segment or heartbeat), when known."""

    @property
    def live(self) -> bool:
        return self.ended_at is None


def describe_error(e: BaseException) -> str:
    """An exception as it may be logged: its class and the database's error code, never its
    message (which can quote a row)."""
    orig = getattr(e, "orig", None)
    code = (
        getattr(orig, "sqlstate", None)
        or getattr(orig, "sqlite_errorname", None)
        or getattr(e, "code", None)
    )
    name = type(orig).__name__ if orig is not None else type(e).__name__
    return f"{type(e).__name__}({name}{', ' + str(code) if code else ''})"


def engine_for(url: str) -> sa.engine.Engine:
    """A SQLAlchemy engine for a store URL (``sqlite:///path`` or ``postgresql://...``) that
    never puts bound parameters into its errors."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        engine = sa.create_engine(
            url, pool_pre_ping=True, hide_parameters=True, pool_size=10, max_overflow=20
        )
    except (sa.exc.ArgumentError, ImportError, TypeError) as e:
        raise StoreError(
            f"unusable store URL ({type(e).__name__})",
            hint="use sqlite:///path or postgresql://user@host/db",
        ) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _alembic_config(connection: sa.engine.Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def schema_head() -> str:
    """The newest schema version this code knows."""
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def schema_version(engine: sa.engine.Engine) -> str | None:
    """The database's schema version (None: no version table)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: sa.engine.Engine) -> Iterator[None]:
    """Serialise schema upgrades of one database across processes."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:":
        yield
        return
    lock_path = Path(db).expanduser().with_name(Path(db).name + ".migrate.lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade_schema(engine: sa.engine.Engine, revision: str | None = None) -> str:
    """Bring the database to schema ``revision`` (default: the newest) and return it; raises
    :class:`StoreSchemaError` for a database of a newer or unknown version."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with _migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg = _alembic_config(conn)
        script = ScriptDirectory.from_config(cfg)
        head = script.get_current_head()
        current = MigrationContext.configure(conn).get_current_revision()
        if current is None and sa.inspect(conn).has_table(meetings_table.name):
            logger.info("adopting an unversioned transcript store (schema %s)", BASELINE_REVISION)
            command.stamp(cfg, BASELINE_REVISION)
            current = BASELINE_REVISION
        known = {rev.revision for rev in script.walk_revisions()}
        if current is not None and current not in known:
            raise StoreSchemaError(
                f"the transcript store has schema version {current!r}, which this greffier "
                f"does not know (newest known: {head!r})",
                hint="run a greffier at least as new as the one that wrote it, or point "
                "GREFFIER_STORE__URL to another database",
            )
        target = revision or head
        assert target is not None
        if current != target:
            logger.info("upgrading the transcript store schema from %s to %s", current, target)
            command.upgrade(cfg, target)
    return target


class TranscriptStore:
    """Meetings and their final segments in a SQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = engine_for(url)
        try:
            self.schema = upgrade_schema(self._engine)
        except StoreSchemaError:
            self._engine.dispose()
            raise
        except sa.exc.SQLAlchemyError as e:
            self._engine.dispose()
            raise StoreError(
                f"cannot open the transcript store: {_open_reason(e)}",
                hint="check GREFFIER_STORE__URL and that the database runs",
            ) from None
        self.meetings = meetings_table
        self.segments = segments_table

    @property
    def engine(self) -> sa.engine.Engine:
        return self._engine

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as e:
            raise _store_error(f"{what} failed", e) from None

    # -- meetings ------------------------------------------------------------------------

    def open_meeting(
        self,
        room: str,
        *,
        now: float | None = None,
        title: str = "",
        stale_after_s: float | None = None,
    ) -> MeetingRecord:
        """The room's live meeting, continued, or a new one (atomic across processes: the
        database holds one live record per room). A live record whose last activity is older
        than ``stale_after_s`` is closed at that activity and a new one opened."""
        m = self.meetings
        for _ in range(5):
            at = now if now is not None else time.time()
            with self._errors("opening a meeting"), self._engine.begin() as conn:
                row = conn.execute(
                    sa.select(m).where(m.c.room == room, m.c.ended_at.is_(None))
                ).first()
                if row is not None:
                    live = _meeting(row)
                    last = max(live.active_at or live.started_at, live.started_at)
                    if stale_after_s is None or at - last <= stale_after_s:
                        return live
                    conn.execute(
                        m.update()
                        .where(m.c.id == live.id, m.c.ended_at.is_(None))
                        .values(ended_at=last)
                    )
                    logger.info("meeting %s closed: no activity for %.0f s", live.id, at - last)
            meeting = MeetingRecord(
                id=uuid.uuid4().hex[:16],
                room=room,
                started_at=at,
                title=title or room,
                active_at=at,
            )
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        m.insert().values(
                            id=meeting.id,
                            room=room,
                            title=meeting.title,
                            started_at=at,
                            ended_at=None,
                            active_at=at,
                        )
                    )
                return meeting
            except sa.exc.IntegrityError:
                continue  # another writer opened the room's record first: take theirs
            except sa.exc.SQLAlchemyError as e:
                raise _store_error("opening a meeting failed", e) from None
        raise StoreError(
            "opening a meeting failed: the live record kept changing",
            hint="another process opens and closes this room's record in a loop",
        )

    def end_meeting(self, meeting_id: str, *, now: float | None = None) -> None:
        with self._errors("ending a meeting"), self._engine.begin() as conn:
            conn.execute(
                self.meetings.update()
                .where(self.meetings.c.id == meeting_id, self.meetings.c.ended_at.is_(None))
                .values(ended_at=now or time.time())
            )

    def touch(self, meeting_id: str, *, now: float | None = None) -> None:
        """Record activity on a live meeting (a captioner's heartbeat)."""
        with self._errors("recording activity"), self._engine.begin() as conn:
            conn.execute(
                self.meetings.update()
                .where(self.meetings.c.id == meeting_id)
                .values(active_at=now or time.time())
            )

    def meeting(self, meeting_id: str) -> MeetingRecord | None:
        with self._errors("reading a meeting"), self._engine.connect() as conn:
            row = conn.execute(
                sa.select(self.meetings).where(self.meetings.c.id == meeting_id)
            ).first()
        return _meeting(row) if row is not None else None

    def list_meetings(self, room: str | None = None, limit: int = 100) -> list[MeetingRecord]:
        query = (
            sa.select(self.meetings)
            .order_by(self.meetings.c.started_at.desc(), self.meetings.c.id)
            .limit(limit)
        )
        if room is not None:
            query = query.where(self.meetings.c.room == room)
        with self._errors("listing meetings"), self._engine.connect() as conn:
            return [_meeting(r) for r in conn.execute(query)]

    # -- segments ------------------------------------------------------------------------

    def add_segment(self, meeting_id: str, segment: TranscriptSegment) -> None:
        """Write one final segment (committed before this returns; written again, it
        replaces itself)."""
        self.add_segments(meeting_id, [segment])

    def add_segments(self, meeting_id: str, segments: Sequence[TranscriptSegment]) -> None:
        """Upsert final segments in one transaction, in order, and record the activity."""
        if not segments:
            return
        now = time.time()
        with self._errors(f"writing {len(segments)} segment(s)"), self._engine.begin() as conn:
            for segment in segments:
                conn.execute(self._upsert(_values(meeting_id, segment, now)))
            conn.execute(
                self.meetings.update().where(self.meetings.c.id == meeting_id).values(active_at=now)
            )

    def _upsert(self, values: dict[str, Any]) -> Any:
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        stmt: Any = dialect.insert(self.segments).values(**values)
        changed = {k: v for k, v in values.items() if k not in ("meeting_id", "id")}
        return stmt.on_conflict_do_update(index_elements=["meeting_id", "id"], set_=changed)

    def replace_segments(self, meeting_id: str, segments: Sequence[TranscriptSegment]) -> None:
        """Replace a meeting's segments of the tracks ``segments`` belong to by ``segments``
        (end-of-meeting diarization), in one transaction."""
        tracks = {s.track_sid for s in segments}
        now = time.time()
        with self._errors("replacing segments"), self._engine.begin() as conn:
            conn.execute(
                self.segments.delete().where(
                    self.segments.c.meeting_id == meeting_id, self.segments.c.track_sid.in_(tracks)
                )
            )
            for s in segments:
                conn.execute(self._upsert(_values(meeting_id, s, now)))

    def segments_of(self, meeting_id: str) -> list[TranscriptSegment]:
        """A meeting's final segments in time order."""
        with self._errors("reading segments"), self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(self.segments)
                .where(self.segments.c.meeting_id == meeting_id)
                .order_by(self.segments.c.start, self.segments.c.id)
            )
            return [_segment(r) for r in rows]

    def close(self) -> None:
        self._engine.dispose()


def _store_error(what: str, e: sa.exc.SQLAlchemyError) -> StoreError:
    """A StoreError for ``e`` (raised ``from None``: the library's message, which can quote a
    row, stays out of tracebacks); :class:`StoreDataError` when the data itself is refused."""
    if isinstance(e, sa.exc.DataError | sa.exc.IntegrityError):
        return StoreDataError(
            f"{what}: {describe_error(e)}",
            hint="the database refuses these values; they are kept aside",
        )
    return StoreError(
        f"{what}: {describe_error(e)}", hint="check that the database runs and is writable"
    )


def _open_reason(e: sa.exc.SQLAlchemyError) -> str:
    """Why a store could not open: the class and code, plus the driver's first line for
    connection problems (no row can be quoted before the store is open)."""
    reason = describe_error(e)
    orig = getattr(e, "orig", None)
    if isinstance(e, sa.exc.OperationalError) and orig is not None:
        first = (str(orig).strip().splitlines() or [""])[0][:200]
        if first:
            reason += f": {first}"
    return reason


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _values(meeting_id: str, segment: TranscriptSegment, now: float) -> dict[str, Any]:
    return {
        "id": segment.segment_id,
        "meeting_id": meeting_id,
        "speaker_identity": segment.speaker.identity,
        "speaker_name": segment.speaker.name,
        "speaker_label": segment.speaker.label,
        "track_sid": segment.track_sid,
        "start": segment.start,
        "end": segment.end,
        "language": segment.language,
        "text": segment.text,
        "words": _dump_words(segment.words),
        "created_at": now,
    }


def _dump_words(words: Sequence[Word]) -> str:
    return json.dumps(
        [[round(w.start, 3), round(w.end, 3), w.text, round(w.probability, 3)] for w in words],
        ensure_ascii=False,
    )


def _meeting(row: Any) -> MeetingRecord:
    m = row._mapping
    return MeetingRecord(
        m["id"], m["room"], m["started_at"], m["ended_at"], m["title"], m["active_at"]
    )


def _segment(row: Any) -> TranscriptSegment:
    m = row._mapping
    words = tuple(Word(s, e, t, p) for s, e, t, p in json.loads(m["words"] or "[]"))
    return TranscriptSegment(
        segment_id=m["id"],
        speaker=Speaker(m["speaker_identity"], m["speaker_name"], m["speaker_label"]),
        start=m["start"],
        end=m["end"],
        text=m["text"],
        language=m["language"],
        words=words,
        track_sid=m["track_sid"],
    )
