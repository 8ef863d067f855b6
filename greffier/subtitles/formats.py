"""End-of-meeting files: SRT and WebVTT subtitles, Markdown minutes, JSON, RTTM.

The writers return text; :func:`write_all` alone touches the file system. Names and text are
data, never markup: every writer puts speaker names through :func:`safe_speaker` (one line,
no control characters, capped) and escapes what its format gives a meaning to, so no name can
open a cue, a heading or a field of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from greffier.core.types import (
    Speaker,
    SpeakerTurn,
    TranscriptSegment,
    Word,
    clean_name,
    one_line,
)
from greffier.diarization.metrics import rttm_name, write_rttm
from greffier.subtitles.cues import DEFAULT, Cue, CueRules, segment_cues, speaker_prefix
from greffier.subtitles.minutes import Minutes

FORMATS = ("md", "srt", "vtt", "json", "rttm")
JSON_SCHEMA = "greffier.minutes"
JSON_VERSION = 1


def _clock(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def _hms(seconds: float) -> str:
    total = max(0, int(seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def safe_speaker(speaker: Speaker) -> Speaker:
    """The speaker with its name and label cleaned (:func:`~greffier.core.types.clean_name`;
    an empty name falls back to the identity)."""
    label = clean_name(speaker.label, "") if speaker.label else None
    return Speaker(
        speaker.identity,
        clean_name(speaker.name, speaker.identity),
        None if label in (None, "?") else label,
    )


def _srt_line(text: str) -> str:
    """A line of SRT text: one line, and no ``-->`` (a timing line's arrow)."""
    line = one_line(text)
    while "-->" in line:
        line = line.replace("-->", "->")
    return line


def _speaker_changes(cues: Sequence[Cue]) -> list[bool]:
    return [k == 0 or cue.speaker != cues[k - 1].speaker for k, cue in enumerate(cues)]


def to_srt(cues: Sequence[Cue], *, speaker_names: bool = True) -> str:
    """SubRip text; with ``speaker_names``, ``Name: `` opens a cue whenever the speaker
    changes. No line is blank or holds ``-->``, so no text can end a cue or open one."""
    blocks = []
    for k, (cue, changed) in enumerate(zip(cues, _speaker_changes(cues), strict=True), 1):
        lines = list(cue.lines) or [""]
        if speaker_names and changed:
            lines[0] = speaker_prefix(safe_speaker(cue.speaker)) + lines[0]
        lines = [line for line in map(_srt_line, lines) if line] or ["…"]
        timing = f"{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}"
        blocks.append("\n".join([str(k), timing, *lines]) + "\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    """One line with ``&``, ``<`` and ``>`` escaped (so no ``-->`` and no tag)."""
    return one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(cues: Sequence[Cue], *, speaker_names: bool = True) -> str:
    """WebVTT text; with ``speaker_names``, each cue in a voice span naming its speaker
    (``<v Name>…</v>``), otherwise timings and text only (as OpenAI's API writes it)."""
    parts = ["WEBVTT\n"]
    for cue in cues:
        body = "\n".join(line for line in map(_vtt_escape, cue.lines) if line) or "…"
        if speaker_names:
            body = f"<v {_vtt_escape(safe_speaker(cue.speaker).display)}>{body}</v>"
        timing = f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}"
        parts.append(f"{timing}\n{body}\n")
    return "\n".join(parts)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def _md_escape(text: str) -> str:
    """One line with Markdown's inline markup characters backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", one_line(text))


def _turns(segments: Iterable[TranscriptSegment]) -> list[tuple[Speaker, float, list[str]]]:
    turns: list[tuple[Speaker, float, list[str]]] = []
    for s in segments:
        if turns and turns[-1][0] == s.speaker:
            turns[-1][2].append(s.text.strip())
        else:
            turns.append((s.speaker, s.start, [s.text.strip()]))
    return turns


def to_markdown(minutes: Minutes) -> str:
    """Readable minutes: metadata, participants, then the transcript by speaker turns."""
    started = minutes.started_at
    zone = started.strftime("%Z") or started.strftime("UTC%z")
    people = minutes.participants
    out = [
        f"# {_md_escape(minutes.title)}",
        "",
        f"- **Date:** {started.strftime('%Y-%m-%d %H:%M')} ({zone})",
        f"- **Duration:** {_hms(minutes.duration_s)}",
        f"- **Participants:** {', '.join(_md_escape(clean_name(p)) for p in people)}",
        "",
        "## Transcript",
        "",
    ]
    for speaker, start, texts in _turns(minutes.segments):
        text = _md_escape(" ".join(t for t in texts if t))
        name = _md_escape(safe_speaker(speaker).display)
        out += [f"[{_hms(start)}] **{name}:** {text}", ""]
    return "\n".join(out)


class _JsonWord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    start: float
    end: float
    text: str
    probability: float


class _JsonSpeaker(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    identity: str
    name: str
    label: str | None = None
    display: str = ""


class _JsonSegment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    speaker: _JsonSpeaker
    start: float
    end: float
    language: str
    text: str
    track_sid: str = ""
    words: list[_JsonWord] = []


class _JsonTurn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    start: float
    end: float
    speaker: str


class _JsonMeeting(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    title: str
    started_at: str
    """ISO 8601 with the UTC offset of the meeting's place."""
    timezone: str | None = None
    """IANA zone name, when known."""
    duration_s: float


class _JsonMinutes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    schema_: Literal["greffier.minutes"] = Field(default="greffier.minutes", alias="schema")
    version: Literal[1] = 1
    meeting: _JsonMeeting
    participants: list[str]
    segments: list[_JsonSegment]
    turns: list[_JsonTurn] = []


def segment_document(segment: TranscriptSegment, *, words: bool = True) -> dict[str, Any]:
    """A segment as the minutes' JSON writes it (``id``, ``speaker`` with its ``display``
    name, times, ``language``, ``text``, ``track_sid``, and ``words`` unless left out); the
    service's meeting detail serves the same fields."""
    s = segment
    doc: dict[str, Any] = {
        "id": s.segment_id,
        "speaker": {
            "identity": s.speaker.identity,
            "name": s.speaker.name,
            "label": s.speaker.label,
            "display": s.speaker.display,
        },
        "start": s.start,
        "end": s.end,
        "language": s.language,
        "text": s.text,
        "track_sid": s.track_sid,
    }
    if words:
        doc["words"] = [
            {"start": w.start, "end": w.end, "text": w.text, "probability": w.probability}
            for w in s.words
        ]
    return doc


def to_json(minutes: Minutes) -> str:
    """A JSON document of the minutes (``schema`` and ``version`` first); see
    :func:`minutes_from_json`."""
    tz = minutes.started_at.tzinfo
    doc = _JsonMinutes(
        meeting=_JsonMeeting(
            title=minutes.title,
            started_at=minutes.started_at.isoformat(),
            timezone=tz.key if isinstance(tz, ZoneInfo) else None,
            duration_s=minutes.duration_s,
        ),
        participants=list(minutes.participants),
        segments=[_JsonSegment.model_validate(segment_document(s)) for s in minutes.segments],
        turns=[_JsonTurn(start=t.start, end=t.end, speaker=t.speaker) for t in minutes.turns],
    )
    return doc.model_dump_json(indent=2, by_alias=True) + "\n"


def minutes_from_json(text: str | bytes) -> Minutes:
    """Minutes read back from :func:`to_json`; raises ``ValueError`` when malformed."""
    try:
        doc = _JsonMinutes.model_validate_json(text)
    except ValidationError as e:
        raise ValueError(f"malformed minutes document: {e.error_count()} error(s)") from e
    try:
        started = datetime.fromisoformat(doc.meeting.started_at)
    except ValueError as e:
        raise ValueError("malformed minutes document: started_at is no ISO 8601 time") from e
    if started.utcoffset() is None:
        raise ValueError("malformed minutes document: started_at has no time zone")
    if doc.meeting.timezone:
        try:
            started = started.astimezone(ZoneInfo(doc.meeting.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return Minutes(
        title=doc.meeting.title,
        started_at=started,
        duration_s=doc.meeting.duration_s,
        participants=tuple(doc.participants),
        segments=tuple(
            TranscriptSegment(
                segment_id=s.id,
                speaker=Speaker(s.speaker.identity, s.speaker.name, s.speaker.label),
                start=s.start,
                end=s.end,
                text=s.text,
                language=s.language,
                words=tuple(Word(w.start, w.end, w.text, w.probability) for w in s.words),
                track_sid=s.track_sid,
            )
            for s in doc.segments
        ),
        turns=tuple(SpeakerTurn(t.start, t.end, t.speaker) for t in doc.turns),
    )


def _intervals(
    items: Iterable[SpeakerTurn | TranscriptSegment], max_gap_s: float
) -> list[tuple[float, float, str]]:
    spans: dict[str, list[tuple[float, float]]] = {}
    for item in items:
        if isinstance(item, SpeakerTurn):
            spans.setdefault(rttm_name(item.speaker), []).append((item.start, item.end))
            continue
        name = rttm_name(safe_speaker(item.speaker).display)
        words = [w for w in item.words if w.text.strip()]
        pieces = [(w.start, w.end) for w in words] or [(item.start, item.end)]
        spans.setdefault(name, []).extend(pieces)
    out = []
    for name, pieces in spans.items():
        merged: list[list[float]] = []
        for start, end in sorted(pieces):
            if merged and start - merged[-1][1] <= max_gap_s:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        out += [(s, e, name) for s, e in merged if e > s]
    return sorted(out)


def to_rttm(
    items: Iterable[SpeakerTurn | TranscriptSegment], file_id: str, *, max_gap_s: float = 0.5
) -> str:
    """RTTM ``SPEAKER`` lines from diarization turns or from segments (written by
    :func:`~greffier.diarization.metrics.write_rttm`).

    Segments give one line per contiguous run of one speaker's words (pauses up to
    ``max_gap_s`` bridged; a segment without words counts as one run); turns are bridged
    the same way. Speaker names are display names with whitespace replaced by ``_``.
    """
    turns = [SpeakerTurn(start, end, name) for start, end, name in _intervals(items, max_gap_s)]
    return write_rttm(turns, file_id)


def render(minutes: Minutes, fmt: str, rules: CueRules = DEFAULT, file_id: str = "minutes") -> str:
    """The minutes in format ``fmt`` (one of :data:`FORMATS`): subtitles cut by ``rules``
    (SRT with room kept for the speaker's name), RTTM from the diarization turns when there
    are some (else the segments) under the file id ``file_id``."""
    if fmt == "md":
        return to_markdown(minutes)
    if fmt == "srt":
        return to_srt(segment_cues(minutes.segments, rules, reserve_speaker_prefix=True))
    if fmt == "vtt":
        return to_webvtt(segment_cues(minutes.segments, rules))
    if fmt == "json":
        return to_json(minutes)
    if fmt == "rttm":
        items: Sequence[SpeakerTurn | TranscriptSegment] = minutes.turns or minutes.segments
        return to_rttm(items, file_id)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def write_all(
    minutes: Minutes,
    stem_path: str | Path,
    formats: Sequence[str] = FORMATS,
    rules: CueRules = DEFAULT,
) -> list[Path]:
    """Write ``stem.md``, ``stem.srt``, ``stem.vtt``, ``stem.json``, ``stem.rttm`` (those
    asked for, in that order) and return their paths."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown formats {unknown}; known: {list(FORMATS)}")
    stem = Path(stem_path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        if fmt not in formats:
            continue
        path = stem.with_name(f"{stem.name}.{fmt}")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(render(minutes, fmt, rules, stem.name), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
