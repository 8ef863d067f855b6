"""The schema of greffier 0.1: meetings and their segments, no version table.

A database that has these tables and no version is stamped with this revision, not rebuilt.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "greffier_meetings",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("room", sa.String(256), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_index("ix_greffier_meetings_room", "greffier_meetings", ["room"])
    op.create_table(
        "greffier_segments",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column(
            "meeting_id", sa.String(64), sa.ForeignKey("greffier_meetings.id"), nullable=False
        ),
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
    )
    op.create_index("ix_greffier_segments_meeting_id", "greffier_segments", ["meeting_id"])


def downgrade() -> None:
    op.drop_table("greffier_segments")
    op.drop_table("greffier_meetings")
