"""Meeting minutes: the final transcript of a meeting with its metadata (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from greffier.core.types import SpeakerTurn, TranscriptSegment


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
