"""End-of-meeting files, read back by real parsers: SRT, WebVTT, JSON, RTTM, Markdown."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import srt
import webvtt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greffier.core.types import (
    NAME_MAX_CHARS,
    Speaker,
    SpeakerTurn,
    TranscriptSegment,
    Word,
    clean_name,
)
from greffier.diarization.metrics import read_rttm, write_rttm
from greffier.subtitles.cues import DEFAULT, Cue, segment_cues, speaker_prefix
from greffier.subtitles.formats import (
    FORMATS,
    minutes_from_json,
    render,
    safe_speaker,
    to_json,
    to_markdown,
    to_rttm,
    to_srt,
    to_webvtt,
    write_all,
)
from greffier.subtitles.minutes import Minutes, assemble_minutes, minutes_stem
from tests.unit.test_cues import Case, cases

pytestmark = pytest.mark.unit

ALICE = Speaker("alice-1", "Alice")
BOB = Speaker("bob-2", "Bob <R&D>")
ROOM = Speaker("room-3", "Salle 3", "2")
PARIS = ZoneInfo("Europe/Paris")


def segment(sid: str, speaker: Speaker, start: float, text: str, *, words: bool = True,
            rate: float = 0.35, language: str = "fr") -> TranscriptSegment:
    ws, t = [], start
    for w in text.split():
        ws.append(Word(round(t, 3), round(t + rate * 0.9, 3), " " + w, 0.875))
        t += rate
    return TranscriptSegment(sid, speaker, start, round(t, 3), text, language,
                             tuple(ws) if words else (), track_sid=f"TR_{speaker.identity}")


SEGMENTS = [
    segment("s1", ALICE, 0.5, "Bonjour à tous, merci d'être venus."),
    segment("s2", ALICE, 3.0, "On commence par le budget ?"),
    segment("s3", BOB, 6.0, "Oui & <vite> : le budget d'abord, puis le calendrier.",
            language="en"),
    segment("s4", ROOM, 11.0, "D'accord pour nous.", words=False),
    segment("s5", ALICE, 13.0, "Parfait."),
]


def minutes(turns: tuple[SpeakerTurn, ...] = ()) -> Minutes:
    return assemble_minutes(list(reversed(SEGMENTS)), title="Comité <budget> 2024",
                            started_at=datetime(2024, 5, 2, 14, 0, 30, tzinfo=PARIS),
                            turns=turns)


def ms(seconds: float) -> int:
    return round(seconds * 1000)


# -------------------------------------------------------------------------------- SRT


def check_srt(text: str, cues: list[Cue], names: bool) -> None:
    subs = list(srt.parse(text))
    assert len(subs) == len(cues)
    previous = None
    for k, (sub, cue) in enumerate(zip(subs, cues, strict=True), 1):
        assert sub.index == k
        assert sub.start == timedelta(milliseconds=ms(cue.start))
        assert sub.end == timedelta(milliseconds=ms(cue.end))
        lines = list(cue.lines)
        if names and cue.speaker != previous:
            lines[0] = speaker_prefix(cue.speaker) + lines[0]
        assert sub.content.split("\n") == lines
        previous = cue.speaker


def test_srt_parses_back_with_speaker_names_on_changes() -> None:
    cues = segment_cues(SEGMENTS)
    text = to_srt(cues)
    check_srt(text, cues, names=True)
    contents = [s.content for s in srt.parse(text)]
    assert sum(c.startswith("Alice: ") for c in contents) == 2  # s1+s2 run, then s5
    assert any(c.startswith("Salle 3 (2): ") for c in contents)
    assert "-->" in text and ",500 -->" in text
    check_srt(to_srt(cues, speaker_names=False), cues, names=False)


def test_srt_of_nothing_is_empty() -> None:
    assert list(srt.parse(to_srt([]))) == []


# ----------------------------------------------------------------------------- WebVTT


def check_vtt(text: str, cues: list[Cue]) -> None:
    assert text.startswith("WEBVTT\n\n")
    captions = webvtt.from_string(text).captions
    assert len(captions) == len(cues)
    for caption, cue in zip(captions, cues, strict=True):
        assert caption.start_time.in_milliseconds() == ms(cue.start)
        assert caption.end_time.in_milliseconds() == ms(cue.end)
        assert caption.voice is not None
        assert html.unescape(caption.voice) == cue.speaker.display
        assert html.unescape(caption.text) == "\n".join(cue.lines)


def test_webvtt_parses_back_with_voice_spans_and_escapes() -> None:
    cues = segment_cues(SEGMENTS)
    text = to_webvtt(cues)
    check_vtt(text, cues)
    assert "<v Bob &lt;R&amp;D&gt;>Oui &amp; &lt;vite&gt;" in text
    assert "<vite>" not in text and "-->" not in text.replace(" --> ", "")


def test_webvtt_without_speaker_names_has_no_voice_span() -> None:
    cues = segment_cues(SEGMENTS)
    captions = webvtt.from_string(to_webvtt(cues, speaker_names=False)).captions
    assert len(captions) == len(cues) and not any(c.voice for c in captions)
    assert [html.unescape(c.text) for c in captions] == ["\n".join(c.lines) for c in cues]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_subtitles_of_random_meetings_parse_back(case: Case) -> None:
    cues = segment_cues(case.segments, DEFAULT)
    check_srt(to_srt(cues), cues, names=True)
    check_vtt(to_webvtt(cues), cues)


# ------------------------------------------------------------------------------- JSON


def test_json_round_trips_and_documents_the_meeting() -> None:
    m = minutes(turns=(SpeakerTurn(0.5, 5.1, "SPEAKER_00"),))
    text = to_json(m)
    doc = json.loads(text)
    assert doc["schema"] == "greffier.minutes" and doc["version"] == 1
    assert doc["meeting"]["title"] == "Comité <budget> 2024"
    assert doc["meeting"]["timezone"] == "Europe/Paris"
    assert doc["participants"] == ["Alice", "Bob <R&D>", "Salle 3 (2)"]
    room = doc["segments"][3]
    assert room["speaker"] == {"identity": "room-3", "name": "Salle 3", "label": "2",
                               "display": "Salle 3 (2)"}
    assert room["words"] == []
    first_word = doc["segments"][0]["words"][0]
    assert set(first_word) == {"start", "end", "text", "probability"}
    assert set(doc["segments"][0]) >= {"id", "speaker", "start", "end", "language", "text",
                                        "words"}
    back = minutes_from_json(text)
    assert back == m
    assert back.started_at.tzinfo == PARIS
    assert minutes_from_json(text.encode()) == m


def test_json_keeps_fixed_offsets() -> None:
    m = assemble_minutes(SEGMENTS[:1], title="t",
                         started_at=datetime(2024, 1, 1, 9, tzinfo=timezone(timedelta(hours=-5))))
    back = minutes_from_json(to_json(m))
    assert back == m and back.started_at.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize("payload", ["not json", "{}", '{"schema": "other", "version": 1}',
                                     '{"schema": "greffier.minutes", "version": 2}'])
def test_malformed_json_is_refused(payload: str) -> None:
    with pytest.raises(ValueError, match="malformed minutes document"):
        minutes_from_json(payload)


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
words = st.builds(Word, finite, finite, st.text(max_size=12), st.floats(0.0, 1.0))
speakers = st.builds(Speaker, st.text(max_size=8), st.text(max_size=8),
                     st.none() | st.text(min_size=1, max_size=3))
segments = st.builds(TranscriptSegment, st.text(max_size=8), speakers, finite, finite,
                     st.text(max_size=40), st.sampled_from(["fr", "en", ""]),
                     st.lists(words, max_size=4).map(tuple), st.text(max_size=6))


@settings(max_examples=100, deadline=None)
@given(st.lists(segments, max_size=5), st.text(max_size=20),
       st.datetimes(timezones=st.sampled_from([UTC, PARIS, timezone(timedelta(hours=5.5))]),
                    allow_imaginary=False),
       st.lists(st.builds(SpeakerTurn, finite, finite, st.text(max_size=6)), max_size=3))
def test_json_round_trips_anything(segs: list[TranscriptSegment], title: str,
                                   started: datetime, turns: list[SpeakerTurn]) -> None:
    m = Minutes(title, started, 12.5, tuple(s.speaker.display for s in segs), tuple(segs),
                tuple(turns))
    assert minutes_from_json(to_json(m)) == m


# ------------------------------------------------------------------------------- RTTM


def rttm_fields(text: str) -> list[list[str]]:
    rows = [line.split() for line in text.splitlines()]
    for row in rows:
        assert len(row) == 10
        assert row[0] == "SPEAKER" and row[2] == "1"
        assert row[5] == row[6] == row[8] == row[9] == "<NA>"
        assert float(row[3]) >= 0 and float(row[4]) > 0
    return rows


def test_rttm_from_segments_joins_runs_of_words() -> None:
    rows = rttm_fields(to_rttm(SEGMENTS, "réunion du 2 mai"))
    assert {r[1] for r in rows} == {"réunion_du_2_mai"}
    names = [r[7] for r in rows]
    assert names == ["Alice", "Bob_<R&D>", "Salle_3_(2)", "Alice"]  # s1 and s2 joined
    alice = rows[0]
    assert float(alice[3]) == 0.5
    assert float(alice[3]) + float(alice[4]) == pytest.approx(SEGMENTS[1].words[-1].end)
    assert [float(r[3]) for r in rows] == sorted(float(r[3]) for r in rows)


def test_rttm_splits_at_pauses_and_skips_empty_turns() -> None:
    seg = TranscriptSegment("s", ALICE, 0.0, 10.0, "a b", "en",
                            (Word(0.0, 1.0, " a"), Word(5.0, 6.0, " b")))
    assert len(rttm_fields(to_rttm([seg], "f"))) == 2
    turns = [SpeakerTurn(0.0, 2.0, "SPEAKER 00"), SpeakerTurn(3.0, 3.0, "SPEAKER_01"),
             SpeakerTurn(2.5, 4.0, "SPEAKER_01")]
    rows = rttm_fields(to_rttm(turns, "f"))
    assert [(r[3], r[4], r[7]) for r in rows] == [("0.000", "2.000", "SPEAKER_00"),
                                                  ("2.500", "1.500", "SPEAKER_01")]


def test_one_rttm_writer_reads_back(tmp_path: Path) -> None:
    turns = [SpeakerTurn(0.25, 2.0, "SPEAKER 00"), SpeakerTurn(1.5, 1.5, "B"),
             SpeakerTurn(1.5, 4.0, "B")]
    text = write_rttm(turns, "my file")
    assert rttm_fields(text) and text == to_rttm(turns, "my file", max_gap_s=0.0)
    (tmp_path / "t.rttm").write_text(text)
    assert read_rttm(tmp_path / "t.rttm", uri="my_file") == [
        SpeakerTurn(0.25, 2.0, "SPEAKER_00"), SpeakerTurn(1.5, 4.0, "B")]


# --------------------------------------------------------------------------- Markdown


def test_markdown_merges_turns_and_lists_participants() -> None:
    md = to_markdown(minutes())
    assert md.startswith("# Comité \\<budget\\> 2024\n")
    assert "2024-05-02 14:00 (CEST)" in md
    assert "- **Duration:** 00:00:13" in md
    assert "- **Participants:** Alice, Bob \\<R&D\\>, Salle 3 (2)" in md
    turns = [line for line in md.splitlines() if line.startswith("[")]
    assert len(turns) == 4  # Alice's first two segments form one turn
    assert turns[0] == ("[00:00:00] **Alice:** Bonjour à tous, merci d'être venus. "
                        "On commence par le budget ?")
    assert turns[1].startswith("[00:00:06] **Bob \\<R&D\\>:** Oui & \\<vite\\>")
    assert turns[2].startswith("[00:00:11] **Salle 3 (2):** D'accord")
    assert turns[3] == "[00:00:13] **Alice:** Parfait."


# ------------------------------------------------------------------- minutes, write_all


def test_minutes_files_are_named_after_the_room_and_the_start_they_show() -> None:
    started = datetime(2024, 3, 12, 9, 30, 15, tzinfo=PARIS)
    assert minutes_stem("Salle A", started) == "Salle-A-20240312-0930"
    assert minutes_stem("Salle A", started.astimezone(UTC)) == "Salle-A-20240312-0830"
    assert minutes_stem("../../étage/3", started) == "etage-3-20240312-0930"
    assert minutes_stem("???", started) == "meeting-20240312-0930"
    long = minutes_stem("r" * 300, started)
    assert long == "r" * 64 + "-20240312-0930"


def test_assemble_minutes_sorts_drops_empty_and_counts() -> None:
    empty = TranscriptSegment("e", BOB, 0.1, 0.2, "   ", "fr")
    m = assemble_minutes([SEGMENTS[2], empty, SEGMENTS[0], SEGMENTS[3]], title="t",
                         started_at=datetime(2024, 5, 2, 12, tzinfo=UTC),
                         turns=[SpeakerTurn(20.0, 21.5, "S1")])
    assert [s.segment_id for s in m.segments] == ["s1", "s3", "s4"]
    assert m.participants == ("Alice", "Bob <R&D>", "Salle 3 (2)")
    assert m.duration_s == 21.5
    assert assemble_minutes([], title="t", started_at=m.started_at).duration_s == 0.0


def test_minutes_need_an_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        assemble_minutes(SEGMENTS, title="t", started_at=datetime(2024, 5, 2, 12))


def test_write_all_names_files_after_the_stem(tmp_path: Path) -> None:
    stem = tmp_path / "exports" / "réunion.2024-05-02"
    paths = write_all(minutes(), stem)
    assert [p.name for p in paths] == [f"réunion.2024-05-02.{ext}"
                                       for ext in ("md", "srt", "vtt", "json", "rttm")]
    assert all(p.is_file() for p in paths)
    md, srt_path, vtt, js, rttm = paths
    assert minutes_from_json(js.read_text(encoding="utf-8")) == minutes()
    subs = list(srt.parse(srt_path.read_text(encoding="utf-8")))
    assert subs and all(len(line) <= DEFAULT.max_chars_per_line
                        for s in subs for line in s.content.split("\n"))
    assert len(webvtt.read(str(vtt)).captions) >= 4
    assert rttm_fields(rttm.read_text(encoding="utf-8"))[0][1] == "réunion.2024-05-02"
    assert not list(stem.parent.glob("*.tmp"))


def test_write_all_uses_diarization_turns_and_a_subset(tmp_path: Path) -> None:
    m = minutes(turns=(SpeakerTurn(0.5, 4.0, "SPEAKER_00"),))
    (rttm,) = write_all(m, tmp_path / "m", formats=("rttm",))
    assert rttm.read_text().split()[7] == "SPEAKER_00"
    with pytest.raises(ValueError, match="unknown formats"):
        write_all(m, tmp_path / "m", formats=("docx",))


def test_render_gives_what_write_all_writes(tmp_path: Path) -> None:
    m = minutes()
    for path in write_all(m, tmp_path / "m"):
        assert path.read_text(encoding="utf-8") == render(m, path.suffix[1:], file_id="m")
    assert [fmt for fmt in FORMATS if render(m, fmt)] == list(FORMATS)
    with pytest.raises(ValueError, match="unknown format"):
        render(m, "docx")


# ------------------------------------------------------------------ hostile names (data)

HOSTILE = [
    "Eve\n\n99\n00:00:00,000 --> 00:59:00,000\nInjected",
    "<script>alert(1)</script>",
    "**bold** | pipe",
    "a b\tc",
    "\u202eevil\u202c \u200fשלום\u200e",
    "Zoë " + "x" * 10_000,
    "\x00\x1b[31m--> # [link](http://x)",
    "WEBVTT\r\n\r\nNOTE",
]


def hostile_segments() -> list[TranscriptSegment]:
    out = []
    for k, name in enumerate(HOSTILE):
        speaker = Speaker(f"id-{k}", name, "2" if k % 3 == 0 else None)
        out.append(segment(f"h{k}", speaker, 2.0 * k, "Bonjour. On commence."))
    return out


def hostile_minutes() -> Minutes:
    return assemble_minutes(hostile_segments(), title="Eve\n\n# Injected <b>",
                            started_at=datetime(2024, 5, 2, 14, tzinfo=PARIS))


def clean_display(speaker: Speaker) -> str:
    return safe_speaker(speaker).display


def test_names_are_cleaned_to_one_capped_line() -> None:
    assert clean_name(HOSTILE[0]) == "Eve 99 00:00:00,000 --> 00:59:00,000 Injected"
    assert clean_name("a b\tc") == "a b c"
    assert clean_name("\u202eevil\u202c") == "evil"  # bidi overrides go, RTL text stays
    assert clean_name("  \u200fשלום ") == "\u200fשלום"
    assert len(clean_name(HOSTILE[5])) == NAME_MAX_CHARS
    assert clean_name("\x00\n\t", "alice-1") == "alice-1"
    assert clean_name("", "") == "?"
    for name in HOSTILE:
        cleaned = clean_name(name)
        assert cleaned and len(cleaned) <= NAME_MAX_CHARS
        assert not any(c in cleaned for c in "\n\r\t\x00\x1b\u202e")


def test_hostile_names_open_no_srt_cue() -> None:
    segs = hostile_segments()
    cues = segment_cues(segs, reserve_speaker_prefix=True)
    subs = list(srt.parse(to_srt(cues)))
    assert len(subs) == len(cues)  # no injected cue
    assert max(s.end for s in subs) < timedelta(minutes=1)
    firsts = [s.content.split("\n")[0] for s in subs]
    for seg in segs:
        prefix = speaker_prefix(safe_speaker(seg.speaker)).replace("-->", "->")
        assert sum(f.startswith(prefix) for f in firsts) == 1, prefix
    assert all("-->" not in s.content for s in subs)
    assert all(line.strip() for s in subs for line in s.content.split("\n"))


def test_hostile_names_open_no_vtt_cue_or_tag() -> None:
    segs = hostile_segments()
    cues = segment_cues(segs)
    text = to_webvtt(cues)
    captions = webvtt.from_string(text).captions
    assert len(captions) == len(cues)
    assert [html.unescape(c.voice) for c in captions] == [clean_display(c.speaker)
                                                          for c in cues]
    assert all(html.unescape(c.text) == "\n".join(cue.lines)
               for c, cue in zip(captions, cues, strict=True))
    assert "<script>" not in text and text.count("-->") == len(cues)
    body = text.split("\n", 2)[2]
    assert "WEBVTT" not in body.replace("WEBVTT NOTE", "")  # the name stays inside its <v>


def test_hostile_names_stay_inside_their_markdown_turn() -> None:
    m = hostile_minutes()
    md = to_markdown(m)
    lines = md.splitlines()
    assert lines[0] == "# Eve \\# Injected \\<b\\>"
    assert sum(line.startswith("#") for line in lines) == 2  # the title and "## Transcript"
    turns = [line for line in lines if line.startswith("[")]
    assert len(turns) == len(HOSTILE)
    unescape = re.compile(r"\\(.)")
    for line, seg in zip(turns, m.segments, strict=True):
        match = re.fullmatch(r"\[\d\d:\d\d:\d\d\] \*\*(.+?)(?<!\\)\*\*(.*)", line)
        assert match, line
        shown = unescape.sub(r"\1", match.group(1))
        assert shown == clean_display(seg.speaker) + ":"
        assert "**" not in match.group(2) and "|" not in line.replace("\\|", "")
    participants = next(line for line in lines if line.startswith("- **Participants:**"))
    assert "\n" not in participants and participants.count("\\*\\*bold\\*\\*") == 1


def test_hostile_names_round_trip_in_json_and_stay_one_rttm_field() -> None:
    m = hostile_minutes()
    doc = json.loads(to_json(m))
    assert [s["speaker"]["name"] for s in doc["segments"]] == HOSTILE  # data, escaped by JSON
    assert minutes_from_json(to_json(m)) == m
    rows = rttm_fields(to_rttm(m.segments, "file\nid with spaces"))
    assert {r[1] for r in rows} == {"file_id_with_spaces"}
    assert len({r[7] for r in rows}) == len(HOSTILE)
    assert all(len(r[7]) <= NAME_MAX_CHARS + 4 for r in rows)


def test_write_all_with_hostile_names_parses_back(tmp_path: Path) -> None:
    md, srt_path, vtt, js, rttm = write_all(hostile_minutes(), tmp_path / "m")
    n_cues = len(segment_cues(hostile_segments(), reserve_speaker_prefix=True))
    assert len(list(srt.parse(srt_path.read_text(encoding="utf-8")))) == n_cues
    assert len(webvtt.read(str(vtt)).captions) == len(segment_cues(hostile_segments()))
    rttm_fields(rttm.read_text(encoding="utf-8"))
