"""Data that crosses module boundaries: frozen, slotted dataclasses, times in seconds.

Library types (faster-whisper segments, pyannote annotations, LiveKit protos) are converted
into these at the adapter boundary and never travel further.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its timing."""

    start: float
    """Start time in seconds, on the timeline of the audio it was decoded from."""
    end: float
    """End time in seconds."""
    text: str
    """The word as Whisper wrote it, leading space included (``" hello"``)."""
    probability: float = 1.0

    def shifted(self, offset: float) -> Word:
        """The same word moved by ``offset`` seconds."""
        return Word(self.start + offset, self.end + offset, self.text, self.probability)


def join_words(words: tuple[Word, ...] | list[Word]) -> str:
    """Text of a word sequence, as Whisper spaces it (words carry their leading space)."""
    return "".join(w.text for w in words).strip()


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """What one decoding call heard in a piece of audio."""

    words: tuple[Word, ...]
    language: str
    language_probability: float = 1.0
    no_speech_probability: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 1.0
    text: str = ""
    """Full text; equals ``join_words(words)`` when word timestamps were asked for."""


@dataclass(frozen=True, slots=True)
class Speaker:
    """Who speaks: a participant, possibly refined by diarization inside their track."""

    identity: str
    """LiveKit participant identity (stable, machine-readable)."""
    name: str
    """Display name shown in captions and minutes."""
    label: str | None = None
    """Diarization label within a shared track ("2" in "Room 3 (2)"); None when the track
    has one speaker."""

    @property
    def display(self) -> str:
        """The name as captions show it: ``Name`` or ``Name (label)``."""
        return f"{self.name} ({self.label})" if self.label else self.name


NAME_MAX_CHARS = 64
"""Longest speaker name kept (longer ones are cut)."""
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def one_line(text: str) -> str:
    """``text`` on one line: NFC, control characters and bidi overrides removed, whitespace
    (newlines included) collapsed to single spaces."""
    kept = (
        " " if c.isspace() else c
        for c in unicodedata.normalize("NFC", text)
        if c.isspace()
        or (c not in _BIDI_CONTROLS and unicodedata.category(c) not in ("Cc", "Cs", "Co"))
    )
    return " ".join("".join(kept).split())


def clean_name(name: str | None, fallback: str = "") -> str:
    """A display name as data: :func:`one_line`, at most ``NAME_MAX_CHARS`` characters; an
    empty result falls back to ``fallback`` (cleaned the same way), then to ``"?"``."""
    for raw in (name or "", fallback or ""):
        text = one_line(raw)[:NAME_MAX_CHARS].rstrip()
        if text:
            return text
    return "?"


class TranscriptEventType(enum.StrEnum):
    """Kinds of events a streaming transcriber emits."""

    SPEECH_STARTED = "speech_started"
    INTERIM = "interim"
    FINAL = "final"
    SPEECH_ENDED = "speech_ended"


@dataclass(frozen=True, slots=True)
class TranscriptEvent:
    """One update from a streaming transcriber, on the stream's own timeline."""

    type: TranscriptEventType
    segment_index: int
    """Increments with every segment of the stream; interims and the final of a segment share it."""
    start: float
    end: float
    text: str = ""
    words: tuple[Word, ...] = ()
    confirmed_words: int = 0
    """How many leading words of ``words`` are confirmed (will not change before the final)."""
    language: str = ""
    revision: int = 0
    """Counts the updates of this segment, starting at 0."""


@dataclass(frozen=True, slots=True)
class CaptionUpdate:
    """A caption as published into a room: a transcript event placed in the meeting."""

    segment_id: str
    speaker: Speaker
    track_sid: str
    language: str
    start: float
    """Seconds since the meeting record began."""
    end: float
    text: str
    final: bool
    words: tuple[Word, ...] = ()
    revision: int = 0
    meeting_started_at: float = 0.0
    """Unix time at which the meeting record began (``start`` and ``end`` count from it)."""


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """A stretch of time during which one speaker talks (RTTM-like)."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True, slots=True)
class TranscriptSegment:
    """A final segment of a meeting transcript, as stored and exported."""

    segment_id: str
    speaker: Speaker
    start: float
    end: float
    text: str
    language: str
    words: tuple[Word, ...] = field(default_factory=tuple)
    track_sid: str = ""
