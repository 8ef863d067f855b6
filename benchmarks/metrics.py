"""Pure scoring rules shared by the streaming and live benchmarks (no audio, no model).

* :func:`repeated_phrases`: phrases the captions say more often than the reference does;
* :func:`retracted_segments`: segments shown as interims whose final came back empty;
* :func:`utterance_final_latency`: when the end of an utterance was first covered by a final;
* :func:`length_bucket` / :func:`latency_by_length`: latency by utterance length;
* :func:`median_of_runs`: the median, key by key, of several runs' figures.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from greffier.core.text import normalize_text

PHRASE_WORDS = 4
"""A repeated phrase is at least this many words long."""
COVER_TOLERANCE_S = 0.4
"""A final whose last word ends this close before an utterance's end covers that end (word
times are Whisper's estimates)."""
LENGTH_BUCKETS = (("<3s", 0.0, 3.0), ("3-8s", 3.0, 8.0), (">8s", 8.0, float("inf")))


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def repeated_phrases(reference: str, hypothesis: str, n: int = PHRASE_WORDS) -> list[str]:
    """Phrases of ``n`` or more words that the hypothesis says more often than the reference.

    Both sides are normalised (:func:`normalize_text`). Every ``n``-word sequence occurring at
    least twice in the hypothesis and more often than in the reference marks its extra
    occurrences (all but the first ``max(1, reference count)``); marked positions closer than
    ``n + 1`` words merge into one phrase, so a second copy that is truncated or differs by a
    word still counts once. Returns each repeated phrase as it appears in its repeat.
    """
    ref = normalize_text(reference).split()
    hyp = normalize_text(hypothesis).split()
    ref_counts = Counter(_ngrams(ref, n))
    positions: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, gram in enumerate(_ngrams(hyp, n)):
        positions[gram].append(i)
    marked = sorted(
        p
        for gram, pos in positions.items()
        if len(pos) >= 2 and len(pos) > ref_counts[gram]
        for p in pos[max(1, ref_counts[gram]) :]
    )
    spans: list[list[int]] = []
    for p in marked:
        if spans and p - spans[-1][1] <= n + 1:
            spans[-1][1] = p
        else:
            spans.append([p, p])
    return [" ".join(hyp[a : b + n]) for a, b in spans]


@dataclass(frozen=True, slots=True)
class CaptionEvent:
    """One caption update as a benchmark saw it: enough to follow a segment's life."""

    segment: str
    final: bool
    text: str


def retracted_segments(events: Iterable[CaptionEvent]) -> tuple[list[str], list[str]]:
    """Segments whose interims showed text and whose final came back empty (retracted), and
    segments that showed text and never got a final (left interim), in first-seen order."""
    shown: dict[str, bool] = {}
    final_text: dict[str, str] = {}
    for e in events:
        shown.setdefault(e.segment, False)
        if e.final:
            final_text[e.segment] = e.text.strip()
        elif e.text.strip():
            shown[e.segment] = True
    retracted = [s for s, was in shown.items() if was and s in final_text and not final_text[s]]
    left = [s for s, was in shown.items() if was and s not in final_text]
    return retracted, left


@dataclass(frozen=True, slots=True)
class TimedFinal:
    """A non-empty final: its words' span and its arrival, all on one clock."""

    start: float
    end: float
    arrived: float


def utterance_final_latency(
    finals: Sequence[TimedFinal], start: float, end: float,
    tolerance: float = COVER_TOLERANCE_S,
) -> float | None:
    """Seconds from an utterance's end to the first final covering it, ``None`` without one.

    A final covers the end when its words begin before the end and reach it (within
    ``tolerance``). Failing that, the last final lying inside the utterance counts (a final
    whose word times fell short of the end). Finals of other utterances never count.
    """
    covering = [f.arrived for f in finals
                if f.start <= end + tolerance and f.end >= end - tolerance]
    if covering:
        return min(covering) - end
    inside = [f.arrived for f in finals if start - tolerance <= f.end <= end + tolerance]
    return max(inside) - end if inside else None


def length_bucket(duration_s: float) -> str:
    """The utterance length class: ``<3s``, ``3-8s`` or ``>8s``."""
    for name, lo, hi in LENGTH_BUCKETS:
        if lo <= duration_s < hi:
            return name
    return LENGTH_BUCKETS[-1][0]


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def latency_by_length(
    samples: Iterable[tuple[float, float | None]],
) -> dict[str, dict[str, Any]]:
    """``(utterance duration, latency or None)`` pairs to count, p50, p95 and missing finals
    per length bucket."""
    out: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[float | None]] = {name: [] for name, _, _ in LENGTH_BUCKETS}
    for duration, latency in samples:
        groups[length_bucket(duration)].append(latency)
    for name, values in groups.items():
        got = [v for v in values if v is not None]
        out[name] = {"utterances": len(values), "without_final": len(values) - len(got),
                     "p50_s": _r(percentile(got, 50)), "p95_s": _r(percentile(got, 95))}
    return out


def median_of_runs(runs: Sequence[Any]) -> Any:
    """Key by key median of several runs' figures: numbers by their median, dictionaries
    recursively; other values (lists, text) from the first run. ``None`` values are skipped."""
    runs = [r for r in runs if r is not None]
    if not runs:
        return None
    first = runs[0]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for r in runs if isinstance(r, dict) for k in r))
        return {k: median_of_runs([r[k] for r in runs if isinstance(r, dict) and k in r])
                for k in keys}
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    nums = [float(v) for v in runs if isinstance(v, int | float) and not isinstance(v, bool)]
    if not nums:
        return None
    m = statistics.median(nums)
    if all(isinstance(v, int) for v in runs):
        return int(m) if m == int(m) else m
    return round(m, 4)
