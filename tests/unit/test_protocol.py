"""The three caption payloads: text-stream attributes, legacy transcription, JSON message."""

from __future__ import annotations

import json

import pytest

from greffier.agents.publisher import legacy_transcription
from greffier.core.types import CaptionUpdate, Speaker, Word
from greffier.subtitles.caption_queue import CaptionQueue
from greffier.subtitles.protocol import (
    ATTR_FINAL,
    ATTR_SEGMENT_ID,
    ATTR_TRACK_ID,
    CaptionMessage,
    participant_language,
    text_stream_attributes,
)

pytestmark = pytest.mark.unit


def update(final: bool = True, text: str = "Bonjour à tous.", label: str | None = None) -> (
    CaptionUpdate
):
    return CaptionUpdate(
        segment_id="TR_abc-1f2e3d-4", speaker=Speaker("alice-42", "Alice Martin", label),
        track_sid="TR_abc", language="fr", start=12.3456, end=14.5, text=text, final=final,
        words=(Word(12.3456, 13.0, " Bonjour"),), revision=3, meeting_started_at=1_700_000_000.5,
    )


def test_text_stream_attributes_follow_livekit_conventions() -> None:
    attrs = text_stream_attributes(update())
    assert attrs[ATTR_SEGMENT_ID] == "TR_abc-1f2e3d-4"
    assert attrs[ATTR_TRACK_ID] == "TR_abc"
    assert attrs[ATTR_FINAL] == "true"
    assert text_stream_attributes(update(final=False))[ATTR_FINAL] == "false"
    assert all(isinstance(v, str) for v in attrs.values())


def test_legacy_transcription_carries_the_segment_in_milliseconds() -> None:
    t = legacy_transcription(update())
    assert t.participant_identity == "alice-42" and t.track_sid == "TR_abc"
    (seg,) = t.segments
    assert (seg.id, seg.text, seg.start_time, seg.end_time, seg.final, seg.language) == (
        "TR_abc-1f2e3d-4", "Bonjour à tous.", 12345, 14500, True, "fr"
    )


def test_caption_message_round_trip_and_speaker_label() -> None:
    msg = CaptionMessage.from_update(update(label="2"))
    data = json.loads(msg.to_bytes())
    assert data["type"] == "caption" and data["version"] == 1
    assert data["speaker"] == {"identity": "alice-42", "name": "Alice Martin (2)", "label": "2"}
    assert data["start"] == 12.346 and data["final"] is True
    assert data["meeting_started_at"] == 1_700_000_000.5
    assert CaptionMessage.parse(msg.to_bytes()) == msg


@pytest.mark.parametrize("payload", [b"not json", b"{}", b'{"type": "caption", "version": 2}',
                                     json.dumps({"type": "caption", "segment_id": "",
                                                 "track_sid": "t", "language": "en",
                                                 "speaker": {"identity": "a", "name": "A"},
                                                 "start": -1, "end": 0, "final": True,
                                                 "text": ""}).encode()])
def test_malformed_messages_are_refused_with_a_clear_error(payload: bytes) -> None:
    with pytest.raises(ValueError, match="malformed caption message"):
        CaptionMessage.parse(payload)


def test_participant_language_attribute() -> None:
    assert participant_language({"greffier.language": "FR"}) == "fr"
    assert participant_language({"language": "en"}) == "en"
    assert participant_language({"language": "auto"}) is None
    assert participant_language({}) is None


def test_caption_queue_coalesces_waiting_interims_but_keeps_finals() -> None:
    q = CaptionQueue()
    q.push(update(final=False, text="a"))
    q.push(update(final=False, text="a b"))
    q.push(update(final=True, text="a b c"))
    q.push(update(final=False, text="a b c d"))
    assert [u.text for u in q] == ["a b", "a b c", "a b c d"]
    assert q.coalesced == 1
    assert [q.pop().text for _ in range(3)] == ["a b", "a b c", "a b c d"]  # type: ignore[union-attr]
    assert q.pop() is None
