"""One scoring for every streaming system: what it displayed, and when.

A system's run over a clip is a list of snapshots ``(t, committed, tentative)``: seconds since
the first audio sample was fed, the text it considers final so far, and the text still subject
to change. From that alone:

* WER: what is displayed at the end (committed and still tentative: what the user is left
  with) against the reference;
* first interim latency: first non-empty display minus the clip's first speech;
* final latency: last change of the committed text minus the clip's last speech;
* flicker: displayed words rewritten between consecutive snapshots, per final word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from greffier.asr.replay import ReplayResult
from greffier.core.text import normalize_text
from greffier.core.types import TranscriptEventType, join_words


@dataclass(frozen=True, slots=True)
class Snapshot:
    t: float
    committed: str
    tentative: str = ""

    @property
    def display(self) -> str:
        return f"{self.committed} {self.tentative}".strip()


@dataclass(frozen=True, slots=True)
class ClipScore:
    final_text: str
    first_interim_latency: float | None
    final_latency: float | None
    rewrites: int
    final_words: int


def snapshots_from_replay(result: ReplayResult) -> list[Snapshot]:
    """greffier's events as snapshots: committed = the finals so far, tentative = the interim."""
    finals: list[str] = []
    out: list[Snapshot] = []
    for timed in result.events:
        ev = timed.event
        if ev.type is TranscriptEventType.FINAL:
            if ev.text:
                finals.append(ev.text)
            out.append(Snapshot(timed.time, " ".join(finals)))
        elif ev.type is TranscriptEventType.INTERIM:
            out.append(Snapshot(timed.time, " ".join(finals), join_words(ev.words) or ev.text))
    return out


def score(snapshots: Sequence[Snapshot], speech_start: float, speech_end: float) -> ClipScore:
    """Score one clip's snapshots (see the module docstring)."""
    snaps = sorted(snapshots, key=lambda s: s.t)
    final_text = snaps[-1].display if snaps else ""
    first = next((s.t for s in snaps if s.display), None)
    last_change = None
    previous_committed = ""
    for s in snaps:
        if s.committed != previous_committed:
            last_change = s.t
            previous_committed = s.committed
    rewrites = 0
    previous: list[str] = []
    for s in snaps:
        words = normalize_text(s.display).split()
        common = 0
        while common < min(len(previous), len(words)) and previous[common] == words[common]:
            common += 1
        rewrites += len(previous) - common
        previous = words
    return ClipScore(
        final_text=final_text,
        first_interim_latency=None if first is None else first - speech_start,
        final_latency=None if last_change is None else last_change - speech_end,
        rewrites=rewrites,
        final_words=len(normalize_text(final_text).split()),
    )
