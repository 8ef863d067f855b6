"""The captioner's per-participant rules: names cleaned where speakers are made, and the
language setting kept across unrelated attribute changes (a real transcriber and engine; the
decoder writes one word per 0.3 s)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from greffier.agents.captioner import TrackCaptioner, speaker_of
from greffier.agents.shared_mic import relabel_segments
from greffier.asr.engine import InferenceEngine
from greffier.asr.streaming import StreamingOptions, StreamingTranscriber
from greffier.core.types import NAME_MAX_CHARS, Speaker, SpeakerTurn, TranscriptSegment, Word
from tests.unit.test_streaming_sequence import CountingDecoder

pytestmark = pytest.mark.unit


def participant(attributes: dict[str, str], name: str = "Alice") -> SimpleNamespace:
    return SimpleNamespace(identity="alice-1", name=name, attributes=attributes)


def captioner(language: str | None, attributes: dict[str, str]) -> TrackCaptioner:
    """A TrackCaptioner's participant-following part, without a LiveKit track."""
    engine = InferenceEngine(CountingDecoder())
    cap = TrackCaptioner.__new__(TrackCaptioner)
    cap.transcriber = StreamingTranscriber(
        engine, StreamingOptions(language=language, synchronous=True))
    cap._configured_language = language
    cap._asked_language = None
    cap._follow_language(participant(attributes))  # type: ignore[arg-type]
    return cap


async def test_an_unrelated_attribute_change_keeps_the_configured_language() -> None:
    cap = captioner("fr", {})
    assert cap.transcriber.language.language == "fr"
    cap.update_participant(participant({"role": "host"}))  # type: ignore[arg-type]
    assert cap.transcriber.language.language == "fr"
    cap.update_participant(participant({"role": "host", "greffier.language": "en"}))  # type: ignore[arg-type]
    assert cap.transcriber.language.language == "en"
    cap.update_participant(participant({"greffier.language": "en", "hand": "up"}))  # type: ignore[arg-type]
    assert cap.transcriber.language.language == "en"
    cap.update_participant(participant({"hand": "up"}))  # type: ignore[arg-type]
    assert cap.transcriber.language.language == "fr", "removing the attribute restores it"
    await cap.transcriber.aclose()


async def test_an_unrelated_attribute_change_keeps_a_detected_language() -> None:
    cap = captioner(None, {})
    cap.transcriber.language.observe("de", 0.9, 5.0)
    assert cap.transcriber.language.language == "de"
    cap.update_participant(participant({"role": "host"}))  # type: ignore[arg-type]
    assert cap.transcriber.language.language == "de"
    await cap.transcriber.aclose()


async def test_a_language_attribute_at_join_is_followed() -> None:
    cap = captioner("fr", {"greffier.language": "EN"})
    assert cap.transcriber.language.language == "en"
    await cap.transcriber.aclose()


@pytest.mark.parametrize(("raw", "shown"), [
    ("Eve\n\n99\n00:00:00,000 --> 00:59:00,000\nInjected",
     "Eve 99 00:00:00,000 --> 00:59:00,000 Injected"),
    ("  Zoë\t Martin \u202e", "Zoë Martin"),
    ("\x00\x1b\n", "alice-1"),
    ("", "alice-1"),
])
def test_speakers_are_made_with_clean_names(raw: str, shown: str) -> None:
    assert speaker_of(participant({}, raw)) == Speaker("alice-1", shown)  # type: ignore[arg-type]
    assert len(speaker_of(participant({}, "x" * 10_000)).name) == NAME_MAX_CHARS  # type: ignore[arg-type]


def test_shared_microphone_labels_are_clean() -> None:
    words = (Word(0.0, 0.5, " a"), Word(1.0, 1.5, " b"))
    seg = TranscriptSegment("s", Speaker("room", "Room"), 0.0, 1.5, "a b", "en", words)
    out = relabel_segments([seg], [SpeakerTurn(0.0, 0.6, "A\nB"), SpeakerTurn(0.9, 2, "C")])
    assert [s.speaker.label for s in out] == ["A B", "C"]


def test_only_an_agent_of_our_name_counts_as_a_second_captioner() -> None:
    from greffier.agents.worker import _is_captioner, outranked

    attrs = {"greffier.role": "captioner", "greffier.agent": "greffier"}
    agent = SimpleNamespace(kind=4, attributes=attrs, identity="greffier-0")
    person = SimpleNamespace(kind=0, attributes=attrs, identity="greffier-0")
    other_name = SimpleNamespace(kind=4, attributes={**attrs, "greffier.agent": "x"},
                                 identity="greffier-0")
    assert _is_captioner(agent, "greffier")
    assert not _is_captioner(person, "greffier"), "a person setting attributes cannot evict us"
    assert not _is_captioner(other_name, "greffier")
    assert outranked("greffier-b", ["greffier-a"]) and not outranked("greffier-a", ["greffier-b"])
    assert not outranked("greffier-a", ["greffier-a"]) and not outranked("greffier-a", [])
