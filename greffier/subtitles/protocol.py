"""The wire contract of live captions: topics, attribute keys and the JSON payload.

Captions go out three ways, for three kinds of listeners:

1. ``lk.transcription`` text streams (LiveKit's standard; every LiveKit front end shows them):
   one stream per update carrying the segment's full current text, sent on behalf of the
   speaker (``sender_identity``), with the attributes below.
2. The legacy ``publish_transcription`` event (La Suite Meet's front end listens only there).
3. A JSON message on the data topic ``greffier.captions`` (:class:`CaptionMessage`), with the
   speaker's name, the language and the meeting times, for greffier's own page and tools.

Also here: the attributes a captioner and a participant set, and the line a worker prints for
its supervisor.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from greffier.core.text import language_code
from greffier.core.types import CaptionUpdate

TOPIC_TRANSCRIPTION = "lk.transcription"
ATTR_SEGMENT_ID = "lk.segment_id"
ATTR_TRACK_ID = "lk.transcribed_track_id"
ATTR_FINAL = "lk.transcription_final"
ATTR_SPEAKER_NAME = "greffier.speaker_name"
ATTR_LANGUAGE = "greffier.language"
ATTR_START = "greffier.start"
ATTR_END = "greffier.end"

TOPIC_CAPTIONS = "greffier.captions"
"""Data topic of :class:`CaptionMessage` payloads."""

PARTICIPANT_LANGUAGE_ATTRIBUTES = ("greffier.language", "language")
"""Participant attributes that force the language of that participant's captions."""
PARTICIPANT_SHARED_MIC_ATTRIBUTE = "greffier.shared_microphone"
"""Participant attribute ("true") asking for diarization of that participant's track."""
AGENT_ROLE_ATTRIBUTE = "greffier.role"
AGENT_ROLE = "captioner"
"""A captioner's participant attributes: its role, and the agent name it was dispatched as
(:data:`AGENT_NAME_ATTRIBUTE`), by which captioners of one deployment find each other."""
AGENT_NAME_ATTRIBUTE = "greffier.agent"

READY_LINE = "greffier worker registered"
"""What ``greffier worker`` prints on stderr once registered with the server; its supervisor
(``greffier.livekit.worker_process``) waits for it."""


class CaptionSpeaker(BaseModel):
    """Who spoke."""

    model_config = ConfigDict(frozen=True)

    identity: str
    name: str
    label: str | None = None


class CaptionMessage(BaseModel):
    """JSON payload on :data:`TOPIC_CAPTIONS`, one per interim or final update."""

    model_config = ConfigDict(frozen=True)

    type: Literal["caption"] = "caption"
    version: Literal[1] = 1
    segment_id: str = Field(min_length=1)
    track_sid: str
    speaker: CaptionSpeaker
    language: str
    start: float = Field(ge=0)
    """Seconds since the meeting record began."""
    end: float = Field(ge=0)
    final: bool
    text: str
    revision: int = Field(default=0, ge=0)
    meeting_started_at: float = Field(default=0.0, ge=0)
    """Unix time at which the meeting record began; ``start`` and ``end`` count from it."""

    @classmethod
    def from_update(cls, update: CaptionUpdate) -> CaptionMessage:
        return cls(
            segment_id=update.segment_id,
            track_sid=update.track_sid,
            speaker=CaptionSpeaker(
                identity=update.speaker.identity,
                name=update.speaker.display,
                label=update.speaker.label,
            ),
            language=update.language,
            start=round(max(0.0, update.start), 3),
            end=round(max(0.0, update.end), 3),
            final=update.final,
            text=update.text,
            revision=update.revision,
            meeting_started_at=round(update.meeting_started_at, 3),
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def parse(cls, payload: bytes | str) -> CaptionMessage:
        """Validate a payload; raises ``ValueError`` with the reason when it is malformed."""
        try:
            return cls.model_validate_json(payload)
        except ValidationError as e:
            raise ValueError(f"malformed caption message: {e.error_count()} error(s)") from e


def text_stream_attributes(update: CaptionUpdate) -> dict[str, str]:
    """Attributes of the ``lk.transcription`` text stream carrying ``update``."""
    return {
        ATTR_SEGMENT_ID: update.segment_id,
        ATTR_TRACK_ID: update.track_sid,
        ATTR_FINAL: "true" if update.final else "false",
        ATTR_SPEAKER_NAME: update.speaker.display,
        ATTR_LANGUAGE: update.language,
        ATTR_START: f"{max(0.0, update.start):.3f}",
        ATTR_END: f"{max(0.0, update.end):.3f}",
    }


def participant_language(attributes: dict[str, str]) -> str | None:
    """The language a participant asked for through their attributes, if any."""
    for key in PARTICIPANT_LANGUAGE_ATTRIBUTES:
        code = language_code(attributes.get(key))
        if code is not None:
            return code
    return None
