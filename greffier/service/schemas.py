"""Pydantic models of the service's JSON payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from greffier.store.jobs import JobStatus


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Health(_Out):
    status: Literal["ok"] = "ok"


class Readiness(_Out):
    status: Literal["ready", "unavailable"]
    store: Literal["ok", "unavailable"]
    """Whether the transcript store can be read (the reason is in the service's log)."""


class SpeakerOut(_Out):
    identity: str
    name: str
    label: str | None = None
    display: str


class SegmentOut(_Out):
    id: str
    speaker: SpeakerOut
    start: float
    """Seconds since the meeting began."""
    end: float
    language: str
    text: str
    track_sid: str = ""


class MeetingSummary(_Out):
    id: str
    room: str
    title: str
    started_at: datetime
    ended_at: datetime | None = None
    live: bool
    """True while the meeting is still being captioned."""


class MeetingList(_Out):
    meetings: list[MeetingSummary]


class MeetingDetail(MeetingSummary):
    duration_s: float
    participants: list[str]
    segments: list[SegmentOut]
    minutes: dict[str, str]
    """Download URL of the minutes in each format."""


class ViewerToken(_Out):
    token: str
    """Subscribe-only, hidden participant token (JWT)."""
    url: str
    """LiveKit server URL for the browser."""
    room: str
    identity: str


class CaptionStatus(_Out):
    room: str
    captioning: bool
    """A greffier captioner is in the room."""
    since: datetime | None = None
    """When the captioner joined."""
    meeting_id: str | None = None
    """The room's latest meeting record (live while captioning; ended once stopped)."""
    live: bool = False
    """That record is still open."""
    speakers: list[str] = Field(default_factory=list)
    """Who has spoken so far in that meeting, in order of first final."""


class JobOut(_Out):
    id: str
    status: JobStatus
    filename: str
    diarize: bool
    language: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queue_position: int | None = None
    """Jobs ahead of this one (0: next to run); None once it runs."""
    progress_s: float = 0.0
    """Seconds of audio transcribed so far."""
    duration_s: float | None = None
    error: str | None = None
    """Why the job failed, and what to do."""
    result: dict[str, str] = Field(default_factory=dict)
    """Download URL of the minutes in each format, once done."""


class ErrorOut(_Out):
    detail: str
