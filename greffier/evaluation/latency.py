"""Latency and flicker bookkeeping from a sequence of caption events.

Input: when each utterance was spoken (:class:`SpeechSpan`, seconds on one clock) and what the
listener received (:class:`CaptionEvent`: time, utterance, interim or final, text). An interim
replaces the previous interim of its utterance; a final appends to the utterance's confirmed
text and clears the interim. Per utterance:

* first caption latency: the first event with text (interim, or a final if no interim came)
  minus the start of speech;
* final latency: the last final with text minus the end of speech (the utterance is complete
  on screen only then);
* retracted: interims showed text but no final with text ever came;
* flicker: words shown that a later display of the same utterance changed (for each display,
  the words of the previous one past their common prefix), per word of the finals.

Utterances are grouped by spoken length: < 3 s, 3-8 s, > 8 s.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from greffier.core.text import normalize_text

BUCKETS = ("< 3 s", "3-8 s", "> 8 s")


def length_bucket(duration_s: float) -> str:
    """The bucket of an utterance ``duration_s`` long (3 s and 8 s fall in the middle)."""
    if duration_s < 3.0:
        return BUCKETS[0]
    if duration_s <= 8.0:
        return BUCKETS[1]
    return BUCKETS[2]


class CaptionKind(enum.StrEnum):
    INTERIM = "interim"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class SpeechSpan:
    """An utterance as spoken: first and last speech, seconds."""

    utterance_id: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class CaptionEvent:
    """A caption received at ``time_s`` (same clock as the spans)."""

    time_s: float
    utterance_id: str
    kind: CaptionKind
    text: str


@dataclass(frozen=True, slots=True)
class UtteranceLatency:
    utterance_id: str
    duration_s: float
    bucket: str
    first_caption_s: float | None
    final_s: float | None
    retracted: bool
    changed_words: int
    final_words: int
    final_text: str


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Percentiles (seconds) of one set of latencies; None when empty."""

    count: int
    p50: float | None
    p95: float | None
    mean: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> LatencyStats:
        if not values:
            return cls(0, None, None, None)
        a = np.asarray(values, dtype=float)
        return cls(
            len(values), float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(a.mean())
        )


@dataclass(frozen=True, slots=True)
class LatencyReport:
    utterances: tuple[UtteranceLatency, ...]
    first_caption: LatencyStats
    final: LatencyStats
    final_by_bucket: dict[str, LatencyStats]
    first_caption_by_bucket: dict[str, LatencyStats]
    without_final: int
    """Utterances that never got a final with text (retracted ones included)."""
    retracted: int
    changed_words: int
    final_words: int

    @property
    def flicker(self) -> float:
        """Words changed after being shown, per final word."""
        return self.changed_words / self.final_words if self.final_words else 0.0


_WORD = re.compile(r"\S+")


def _changed(previous: list[str], current: list[str]) -> int:
    common = 0
    while common < min(len(previous), len(current)) and previous[common] == current[common]:
        common += 1
    return len(previous) - common


def latency_report(
    spans: Iterable[SpeechSpan],
    events: Iterable[CaptionEvent],
    *,
    normalizer: Callable[[str], str] = normalize_text,
) -> LatencyReport:
    """Latencies, retractions and flicker per utterance (see the module docstring); events of
    unknown utterances are ignored, words are compared after ``normalizer``."""
    by_id = {s.utterance_id: s for s in spans}
    received: dict[str, list[CaptionEvent]] = {k: [] for k in by_id}
    for ev in sorted(events, key=lambda e: e.time_s):
        if ev.utterance_id in received:
            received[ev.utterance_id].append(ev)
    rows: list[UtteranceLatency] = []
    for uid, span in by_id.items():
        finals: list[str] = []
        interim = ""
        shown_interim = False
        first: float | None = None
        last_final: float | None = None
        changed = 0
        previous: list[str] = []
        for ev in received[uid]:
            text = " ".join(ev.text.split())
            if ev.kind is CaptionKind.FINAL:
                if text:
                    finals.append(text)
                    last_final = ev.time_s
                interim = ""
            else:
                interim = text
                shown_interim = shown_interim or bool(text)
            if text and first is None:
                first = ev.time_s
            display = _WORD.findall(normalizer(" ".join([*finals, interim])))
            changed += _changed(previous, display)
            previous = display
        final_text = " ".join(finals)
        rows.append(
            UtteranceLatency(
                utterance_id=uid,
                duration_s=span.duration_s,
                bucket=length_bucket(span.duration_s),
                first_caption_s=None if first is None else first - span.start_s,
                final_s=None if last_final is None else last_final - span.end_s,
                retracted=shown_interim and not finals,
                changed_words=changed,
                final_words=len(_WORD.findall(normalizer(final_text))),
                final_text=final_text,
            )
        )

    def stats(values: list[float | None]) -> LatencyStats:
        return LatencyStats.of([v for v in values if v is not None])

    return LatencyReport(
        utterances=tuple(rows),
        first_caption=stats([r.first_caption_s for r in rows]),
        final=stats([r.final_s for r in rows]),
        final_by_bucket={b: stats([r.final_s for r in rows if r.bucket == b]) for b in BUCKETS},
        first_caption_by_bucket={
            b: stats([r.first_caption_s for r in rows if r.bucket == b]) for b in BUCKETS
        },
        without_final=sum(r.final_s is None for r in rows),
        retracted=sum(r.retracted for r in rows),
        changed_words=sum(r.changed_words for r in rows),
        final_words=sum(r.final_words for r in rows),
    )
