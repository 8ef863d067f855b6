"""One live record per room, one row per segment of a meeting, activity times, jobs.

- ``greffier_meetings.active_at`` (last activity), filled from the newest segment or the start;
- duplicate live records of a room (possible before this revision) closed, all but the newest;
- partial unique index ``uq_greffier_meetings_live_room`` on ``room`` where ``ended_at`` is
  null;
- ``greffier_segments`` keyed by ``(meeting_id, id)`` (was ``id`` alone), so segments are
  upserted per meeting;
- ``greffier_jobs``, transcription jobs (``greffier.store.jobs``), unless a job store already
  made it.

Revision ID: 0002_live_unique
Revises: 0001_baseline
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002_live_unique"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

_SEGMENT_COLUMNS = (
    "meeting_id, id, speaker_identity, speaker_name, speaker_label, track_sid, "
    '"start", "end", language, text, words, created_at'
)


def _meeting_id() -> sa.Column[str]:
    return sa.Column(
        "meeting_id", sa.String(64), sa.ForeignKey("greffier_meetings.id"), nullable=False
    )


def _segment_fields() -> list[sa.Column[Any]]:
    """The columns of ``greffier_segments`` after ``id`` and ``meeting_id`` (the same in
    both layouts)."""
    return [
        sa.Column("speaker_identity", sa.String(256), nullable=False),
        sa.Column("speaker_name", sa.Text, nullable=False),
        sa.Column("speaker_label", sa.String(64), nullable=True),
        sa.Column("track_sid", sa.String(128), nullable=False),
        sa.Column("start", sa.Float, nullable=False),
        sa.Column("end", sa.Float, nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("words", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    ]


def _replace_segments_with(table: str) -> None:
    """Copy every segment into ``table``, then make it ``greffier_segments``."""
    op.execute(
        f"INSERT INTO {table} ({_SEGMENT_COLUMNS}) SELECT {_SEGMENT_COLUMNS} FROM greffier_segments"
    )
    op.drop_index("ix_greffier_segments_meeting_id", table_name="greffier_segments")
    op.drop_table("greffier_segments")
    op.rename_table(table, "greffier_segments")
    op.create_index("ix_greffier_segments_meeting_id", "greffier_segments", ["meeting_id"])


def upgrade() -> None:
    op.add_column("greffier_meetings", sa.Column("active_at", sa.Float, nullable=True))
    op.execute(
        "UPDATE greffier_meetings SET active_at = COALESCE((SELECT MAX(s.created_at) "
        "FROM greffier_segments s WHERE s.meeting_id = greffier_meetings.id), started_at)"
    )
    op.execute(
        "UPDATE greffier_meetings SET ended_at = active_at WHERE ended_at IS NULL AND EXISTS ("
        "SELECT 1 FROM greffier_meetings newer WHERE newer.room = greffier_meetings.room "
        "AND newer.ended_at IS NULL AND (newer.started_at > greffier_meetings.started_at OR "
        "(newer.started_at = greffier_meetings.started_at AND newer.id > greffier_meetings.id)))"
    )
    op.create_index(
        "uq_greffier_meetings_live_room",
        "greffier_meetings",
        ["room"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )

    op.create_table(
        "greffier_segments_v2",
        _meeting_id(),
        sa.Column("id", sa.String(128), nullable=False),
        *_segment_fields(),
        sa.PrimaryKeyConstraint("meeting_id", "id", name="pk_greffier_segments"),
    )
    _replace_segments_with("greffier_segments_v2")

    if not sa.inspect(op.get_bind()).has_table("greffier_jobs"):
        op.create_table(
            "greffier_jobs",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("filename", sa.Text, nullable=False),
            sa.Column("upload", sa.Text, nullable=False),
            sa.Column("diarize", sa.Boolean, nullable=False),
            sa.Column("language", sa.String(16), nullable=False),
            sa.Column("model", sa.String(128), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("started_at", sa.Float, nullable=True),
            sa.Column("finished_at", sa.Float, nullable=True),
            sa.Column("progress_s", sa.Float, nullable=False),
            sa.Column("duration_s", sa.Float, nullable=True),
            sa.Column("error", sa.Text, nullable=True),
            sa.Column("error_code", sa.String(32), nullable=True),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("minutes", sa.Text, nullable=True),
        )
        op.create_index("ix_greffier_jobs_status", "greffier_jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_greffier_jobs_status", table_name="greffier_jobs")
    op.drop_table("greffier_jobs")
    op.create_table(
        "greffier_segments_v1",
        sa.Column("id", sa.String(128), primary_key=True),
        _meeting_id(),
        *_segment_fields(),
    )
    _replace_segments_with("greffier_segments_v1")
    op.drop_index("uq_greffier_meetings_live_room", table_name="greffier_meetings")
    with op.batch_alter_table("greffier_meetings") as batch:
        batch.drop_column("active_at")
