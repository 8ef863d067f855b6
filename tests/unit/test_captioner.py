"""The captioner's per-participant rules: names cleaned where speakers are made, and the
language setting kept across unrelated attribute changes (a real transcriber and engine; the
decoder writes one word per 0.3 s)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from greffier.agents.captioner import TrackCaptioner, caption_updates, speaker_of
from greffier.agents.shared_mic import relabel_segments
from greffier.asr.engine import InferenceEngine
from greffier.asr.streaming import StreamingOptions, StreamingTranscriber
from greffier.core.timeline import StreamTimeline
from greffier.core.types import (
    NAME_MAX_CHARS,
    CaptionUpdate,
    Hypothesis,
    Speaker,
    SpeakerTurn,
    TranscriptEvent,
    TranscriptEventType,
    TranscriptSegment,
    Word,
)
from greffier.recordings import hypotheses_to_segments
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
    assert cap.transcriber.language_tracker.language == "fr"
    cap.update_participant(participant({"role": "host"}))  # type: ignore[arg-type]
    assert cap.transcriber.language_tracker.language == "fr"
    cap.update_participant(participant({"role": "host", "greffier.language": "en"}))  # type: ignore[arg-type]
    assert cap.transcriber.language_tracker.language == "en"
    cap.update_participant(participant({"greffier.language": "en", "hand": "up"}))  # type: ignore[arg-type]
    assert cap.transcriber.language_tracker.language == "en"
    cap.update_participant(participant({"hand": "up"}))  # type: ignore[arg-type]
    assert cap.transcriber.language_tracker.language == "fr", "removing the attribute restores it"
    await cap.transcriber.aclose()


async def test_an_unrelated_attribute_change_keeps_a_detected_language() -> None:
    cap = captioner(None, {})
    cap.transcriber.language_tracker.observe("de", 0.9, 5.0)
    assert cap.transcriber.language_tracker.language == "de"
    cap.update_participant(participant({"role": "host"}))  # type: ignore[arg-type]
    assert cap.transcriber.language_tracker.language == "de"
    await cap.transcriber.aclose()


async def test_a_language_attribute_at_join_is_followed() -> None:
    cap = captioner("fr", {"greffier.language": "EN"})
    assert cap.transcriber.language_tracker.language == "en"
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


ROOM = Speaker("room-1", "Room 3")
WORDS = (Word(0.0, 0.4, " Hello"), Word(0.5, 0.9, " there."), Word(1.5, 1.9, " Hi"),
         Word(2.0, 2.4, " Bob."))


def event(kind: TranscriptEventType, words: tuple[Word, ...], revision: int) -> TranscriptEvent:
    return TranscriptEvent(kind, 4, words[0].start, words[-1].end,
                           "".join(w.text for w in words).strip(), words, language="en",
                           revision=revision)


def shared_mic_updates(timeline: StreamTimeline) -> list[CaptionUpdate]:
    """A shared microphone's segment: two interims, then a final two voices share."""
    labels = ["1", "1", "2", "2"]
    out: list[CaptionUpdate] = []
    for kind, n, rev in [(TranscriptEventType.INTERIM, 2, 0), (TranscriptEventType.INTERIM, 4, 1),
                         (TranscriptEventType.FINAL, 4, 2)]:
        out += caption_updates(event(kind, WORDS[:n], rev), segment_id="TR_a-e1-4", speaker=ROOM,
                               track_sid="TR_a", timeline=timeline, meeting_started_at=100.0,
                               labels=labels[:n])
    return out


def test_a_split_final_closes_the_interim_shown_under_its_id() -> None:
    timeline = StreamTimeline()
    timeline.on_audio(1.0, 11.0)  # the stream began 10 s into the meeting
    updates = shared_mic_updates(timeline)
    interims = [u for u in updates if not u.final]
    finals = [u for u in updates if u.final]
    assert [u.segment_id for u in interims] == ["TR_a-e1-4", "TR_a-e1-4"]
    assert [u.speaker.display for u in interims] == ["Room 3 (1)", "Room 3 (2)"]
    # every id shown as an interim ends with a final that has text: nothing stays provisional
    assert {u.segment_id for u in interims} <= {u.segment_id for u in finals if u.text}
    assert [(u.segment_id, u.speaker.display, u.text) for u in finals] == [
        ("TR_a-e1-4", "Room 3 (1)", "Hello there."),
        ("TR_a-e1-4.1", "Room 3 (2)", "Hi Bob."),
    ]
    assert updates.index(finals[0]) < updates.index(finals[1]), "the closing final comes first"
    assert [w.text for u in finals for w in u.words] == [w.text for w in WORDS]
    assert finals[1].start == pytest.approx(11.5) and finals[1].end == pytest.approx(12.4)
    assert all(u.meeting_started_at == 100.0 and u.track_sid == "TR_a" for u in updates)


def test_a_one_voice_final_keeps_its_id_and_text() -> None:
    words = WORDS[:2]
    for labels in (None, ["2", "2"]):
        [update] = caption_updates(
            event(TranscriptEventType.FINAL, words, 3), segment_id="TR_a-e1-4", speaker=ROOM,
            track_sid="TR_a", timeline=StreamTimeline(), meeting_started_at=0.0, labels=labels)
        assert (update.segment_id, update.text, update.final) == ("TR_a-e1-4", "Hello there.", True)
        assert update.speaker.label == (labels[0] if labels else None)


def test_the_end_of_meeting_pass_resplits_live_parts_without_id_clashes() -> None:
    live = [TranscriptSegment(u.segment_id, u.speaker, u.start, u.end, u.text, u.language,
                              u.words, u.track_sid)
            for u in shared_mic_updates(StreamTimeline()) if u.final]
    # the whole recording says the first three words are one voice, the last another
    out = relabel_segments(live, [SpeakerTurn(0.0, 1.95, "A"), SpeakerTurn(1.95, 3.0, "B")])
    assert [(s.segment_id, s.speaker.label, s.text) for s in out] == [
        ("TR_a-e1-4", "A", "Hello there. Hi"), ("TR_a-e1-4.1", "B", "Bob.")]
    one = relabel_segments(live, [SpeakerTurn(0.0, 3.0, "A")])
    assert [(s.segment_id, s.text) for s in one] == [("TR_a-e1-4", "Hello there. Hi Bob.")]


def test_recordings_name_split_segments_as_live_captions_do() -> None:
    hyp = Hypothesis(words=WORDS, language="en", text="Hello there. Hi Bob.")
    turns = [SpeakerTurn(0.0, 1.0, "1"), SpeakerTurn(1.4, 3.0, "2")]
    segments = hypotheses_to_segments([hyp, hyp], Speaker("speaker", "x"), turns)
    assert [(s.segment_id, s.speaker.name) for s in segments] == [
        ("seg-00000", "Speaker 1"), ("seg-00000.1", "Speaker 2"),
        ("seg-00001", "Speaker 1"), ("seg-00001.1", "Speaker 2")]


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
