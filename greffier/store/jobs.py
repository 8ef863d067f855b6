"""Transcription jobs in the store: what was asked, where each one stands, and its minutes.

One row per job of ``POST /api/transcriptions`` in the ``greffier_jobs`` table (same database
and ``MetaData`` as the transcript store), so that a restarted service finds its queue again
(``greffier.service.jobs`` re-queues or fails the interrupted jobs). Minutes are kept as their
JSON document (``greffier.subtitles.formats``). The engine hides bound parameters from its
errors: a failed write never puts a transcript or a file name into a log. Calls block.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from greffier.core.errors import StoreError
from greffier.subtitles.formats import minutes_from_json, to_json
from greffier.subtitles.minutes import Minutes

JOBS_TABLE = "greffier_jobs"
UNFINISHED = ("queued", "running")


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One transcription job as stored."""

    id: str
    filename: str
    """The name the client gave the upload (untrusted; never logged)."""
    upload: str
    """Path of the kept upload, removed when the job ends."""
    diarize: bool
    language: str
    model: str
    status: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress_s: float = 0.0
    duration_s: float | None = None
    error: str | None = None
    error_code: str | None = None
    attempts: int = 0
    """How many times the job started (a restart during a run leaves it above 0)."""
    minutes: Minutes | None = None


def jobs_table(metadata: Any) -> Any:
    """The ``greffier_jobs`` table on ``metadata`` (defined once, then reused)."""
    import sqlalchemy as sa

    if JOBS_TABLE in metadata.tables:
        return metadata.tables[JOBS_TABLE]
    return sa.Table(
        JOBS_TABLE,
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("upload", sa.Text, nullable=False),
        sa.Column("diarize", sa.Boolean, nullable=False, default=False),
        sa.Column("language", sa.String(16), nullable=False, default="auto"),
        sa.Column("model", sa.String(128), nullable=False, default=""),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("progress_s", sa.Float, nullable=False, default=0.0),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("minutes", sa.Text, nullable=True),
    )


class JobStore:
    """Transcription jobs in a SQL database (SQLite or PostgreSQL, by URL)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        from greffier.store import sql

        self._sa = sa
        self._engine = sql.engine_for(url)
        self.table = jobs_table(sql.metadata())
        self._lock = threading.Lock()
        try:
            # The schema's migrations create the table; an older schema gets it here.
            sql.upgrade_schema(self._engine)
            self.table.create(self._engine, checkfirst=True)
        except self._sa.exc.SQLAlchemyError as e:
            self._engine.dispose()
            raise StoreError(
                f"cannot open the job store: {sql.describe_error(e)}",
                hint="check GREFFIER_STORE__URL and that the database runs",
            ) from e
        except StoreError:
            self._engine.dispose()
            raise

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._sa.exc.SQLAlchemyError as e:
            from greffier.store.sql import describe_error

            # Never the message: it could quote a row.
            raise StoreError(
                f"cannot {what}: {describe_error(e)}",
                hint="check GREFFIER_STORE__URL and that the database runs",
            ) from e

    def put(self, job: JobRecord) -> None:
        """Insert or replace ``job`` (committed before this returns); raises StoreError."""
        values = _row(job)
        t = self.table
        with self._writing(f"write job {job.id}"), self._lock, self._engine.begin() as conn:
            found = conn.execute(self._sa.select(t.c.id).where(t.c.id == job.id)).first()
            if found is None:
                conn.execute(t.insert().values(**values))
            else:
                conn.execute(t.update().where(t.c.id == job.id).values(**values))

    def get(self, job_id: str) -> JobRecord | None:
        t = self.table
        with self._writing(f"read job {job_id}"), self._engine.connect() as conn:
            row = conn.execute(self._sa.select(t).where(t.c.id == job_id)).first()
        return _record(row) if row is not None else None

    def unfinished(self) -> list[JobRecord]:
        """Jobs queued or running, oldest first."""
        t = self.table
        query = (
            self._sa.select(t).where(t.c.status.in_(UNFINISHED)).order_by(t.c.created_at, t.c.id)
        )
        with self._writing("read the jobs"), self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def prune(self, keep: int) -> int:
        """Delete finished jobs beyond the ``keep`` most recent; returns how many went."""
        sa, t = self._sa, self.table
        with self._writing("prune the jobs"), self._lock, self._engine.begin() as conn:
            old = [
                r.id
                for r in conn.execute(
                    sa.select(t.c.id)
                    .where(t.c.status.not_in(UNFINISHED))
                    .order_by(t.c.finished_at.desc(), t.c.id.desc())
                    .offset(keep)
                )
            ]
            if old:
                conn.execute(t.delete().where(t.c.id.in_(old)))
        return len(old)

    def close(self) -> None:
        self._engine.dispose()


def _row(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "filename": job.filename,
        "upload": job.upload,
        "diarize": job.diarize,
        "language": job.language,
        "model": job.model,
        "status": job.status,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "progress_s": job.progress_s,
        "duration_s": job.duration_s,
        "error": job.error,
        "error_code": job.error_code,
        "attempts": job.attempts,
        "minutes": to_json(job.minutes) if job.minutes is not None else None,
    }


def _record(row: Any) -> JobRecord:
    minutes = None
    if row.minutes:
        try:
            minutes = minutes_from_json(row.minutes)
        except ValueError:
            minutes = None  # unreadable: the job is reported as having no result
    return JobRecord(
        id=row.id,
        filename=row.filename,
        upload=row.upload,
        diarize=bool(row.diarize),
        language=row.language,
        model=row.model,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        progress_s=row.progress_s,
        duration_s=row.duration_s,
        error=row.error,
        error_code=row.error_code,
        attempts=row.attempts,
        minutes=minutes,
    )
