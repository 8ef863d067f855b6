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
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

from greffier.core.errors import StoreError
from greffier.subtitles.formats import minutes_from_json, to_json
from greffier.subtitles.minutes import Minutes

JOBS_TABLE = "greffier_jobs"

JobStatus = Literal["queued", "running", "done", "failed"]
"""Where a job stands (stored in ``status``, served by the service's job routes)."""
QUEUED: Final = "queued"
RUNNING: Final = "running"
DONE: Final = "done"
FAILED: Final = "failed"
UNFINISHED: tuple[JobStatus, ...] = (QUEUED, RUNNING)


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
    status: JobStatus
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


JOB_FIELDS = tuple(f.name for f in fields(JobRecord))
"""The record's fields, in order: also the columns of the jobs table."""


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
    values = {name: getattr(job, name) for name in JOB_FIELDS}
    values["minutes"] = to_json(job.minutes) if job.minutes is not None else None
    return values


def _record(row: Any) -> JobRecord:
    values = {name: getattr(row, name) for name in JOB_FIELDS}
    values["diarize"] = bool(row.diarize)
    values["minutes"] = None
    if row.minutes:
        try:
            values["minutes"] = minutes_from_json(row.minutes)
        except ValueError:
            pass  # unreadable: the job is reported as having no result
    return JobRecord(**values)
