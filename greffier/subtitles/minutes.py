"""Meeting minutes: the final transcript of a meeting with its metadata, and how their files
are named (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from greffier.core.text import safe_name
from greffier.core.types import SpeakerTurn, TranscriptSegment

MAX_ROOM_IN_NAME = 64
"""Characters of the room's name kept in a minutes file name."""


@dataclass(frozen=True, slots=True)
class Minutes:
    """What is exported at the end of a meeting.

    Segment and turn times count in seconds from ``started_at``.
    """

    title: str
    started_at: datetime
    """When the meeting record began (timezone-aware)."""
    duration_s: float
    participants: tuple[str, ...]
    """Display names of the speakers, in order of first speech."""
    segments: tuple[TranscriptSegment, ...]
    """Final segments in start order, none of them empty."""
    turns: tuple[SpeakerTurn, ...] = field(default_factory=tuple)
    """Diarization turns, when diarization ran."""

    def __post_init__(self) -> None:
        if self.started_at.utcoffset() is None:
            raise ValueError("started_at must be timezone-aware")
        if self.duration_s < 0:
            raise ValueError("duration_s cannot be negative")


def local_time(unix: float) -> datetime:
    """A timezone-aware datetime of ``unix`` in this process's zone (``TZ`` sets it): how
    minutes, and the service's times, are dated."""
    return datetime.fromtimestamp(unix).astimezone()


def minutes_stem(room: str, started_at: datetime) -> str:
    """The name of a meeting's minutes files, without extension: ``<room>-<YYYYMMDD-HHMM>``,
    the room made safe (:func:`~greffier.core.text.safe_name`, at most
    :data:`MAX_ROOM_IN_NAME` characters), the time in ``started_at``'s own zone (the one the
    minutes show)."""
    room_part = safe_name(room, "meeting")[:MAX_ROOM_IN_NAME].rstrip("-.") or "meeting"
    return f"{room_part}-{started_at:%Y%m%d-%H%M}"


def participants_of(segments: Iterable[TranscriptSegment]) -> tuple[str, ...]:
    """Display names in order of first appearance."""
    return tuple(dict.fromkeys(s.speaker.display for s in segments))


def assemble_minutes(
    segments: Iterable[TranscriptSegment],
    *,
    title: str,
    started_at: datetime,
    turns: Iterable[SpeakerTurn] | None = None,
) -> Minutes:
    """Minutes from final segments: sorted by start, empty ones dropped, nothing merged."""
    kept = tuple(sorted((s for s in segments if s.text.strip()), key=lambda s: (s.start, s.end)))
    kept_turns = tuple(sorted(turns or (), key=lambda t: (t.start, t.end)))
    ends = [s.end for s in kept] + [t.end for t in kept_turns]
    return Minutes(
        title=title,
        started_at=started_at,
        duration_s=max([0.0, *ends]),
        participants=participants_of(kept),
        segments=kept,
        turns=kept_turns,
    )
