"""Who said each word: recognised words matched to diarization turns (pure functions)."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from greffier.core.types import SpeakerTurn, Word

DEFAULT_TOLERANCE_S = 0.5
"""A word overlapping no turn takes the nearest turn's speaker if it is at most this far."""


class _TurnIndex:
    """Turns sorted by start, with the running maximum of their ends, for window queries."""

    def __init__(self, turns: Sequence[SpeakerTurn]) -> None:
        self.turns = sorted((t for t in turns if t.end >= t.start), key=lambda t: t.start)
        self.starts = [t.start for t in self.turns]
        self.max_end: list[float] = []
        for t in self.turns:
            self.max_end.append(max(t.end, self.max_end[-1]) if self.max_end else t.end)

    def near(self, start: float, end: float) -> list[SpeakerTurn]:
        """Turns that intersect [start, end] (and possibly a few that do not)."""
        hi = bisect.bisect_right(self.starts, end)
        out = []
        i = hi - 1
        while i >= 0 and self.max_end[i] >= start:
            if self.turns[i].end >= start:
                out.append(self.turns[i])
            i -= 1
        return out


def _overlap(word: Word, turn: SpeakerTurn) -> float:
    return min(word.end, turn.end) - max(word.start, turn.start)


def _gap(word: Word, turn: SpeakerTurn) -> float:
    return max(turn.start - word.end, word.start - turn.end, 0.0)


def _pick(word: Word, candidates: Sequence[SpeakerTurn], tolerance: float) -> str | None:
    mid = (word.start + word.end) / 2
    overlap: dict[str, float] = {}
    # distance from the word's middle to the nearest turn of each speaker, for ties
    closeness: dict[str, float] = {}
    for turn in candidates:
        inside = _overlap(word, turn)
        point = word.end <= word.start and turn.start <= word.start <= turn.end
        if inside > 0 or point:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + max(inside, 0.0)
            d = (
                0.0
                if turn.start <= mid <= turn.end
                else min(abs(mid - turn.start), abs(mid - turn.end))
            )
            closeness[turn.speaker] = min(closeness.get(turn.speaker, d), d)
    if overlap:
        return min(overlap, key=lambda s: (-overlap[s], closeness[s], s))
    best: tuple[float, str] | None = None
    for turn in candidates:
        gap = _gap(word, turn)
        if gap <= tolerance and (best is None or (gap, turn.speaker) < best):
            best = (gap, turn.speaker)
    return best[1] if best else None


def assign_speakers(
    words: Sequence[Word],
    turns: Sequence[SpeakerTurn],
    *,
    tolerance: float = DEFAULT_TOLERANCE_S,
) -> list[str | None]:
    """The speaker of each word: the one whose turns overlap the word longest (ties: the turn
    closest to the word's middle, then the smaller label); for a word overlapping no turn, the
    speaker of the nearest turn no further than ``tolerance`` seconds; otherwise None.

    A zero-length word counts as overlapping the turns that contain its instant. Words and turns
    need not be sorted; times must share one timeline.
    """
    index = _TurnIndex(turns)
    return [_pick(w, index.near(w.start - tolerance, w.end + tolerance), tolerance) for w in words]


def split_by_speaker(
    words: Sequence[Word],
    labels: Sequence[str | None],
    *,
    absorb_unknown: bool = False,
) -> list[tuple[str | None, list[Word]]]:
    """Consecutive words of one speaker grouped together, in order.

    With ``absorb_unknown``, words labelled None join the group before them (or, at the start,
    the first labelled group), so that a sentence is not cut by a word diarization missed.
    """
    if len(words) != len(labels):
        raise ValueError(f"{len(words)} words but {len(labels)} labels")
    effective = list(labels)
    if absorb_unknown:
        first = next((label for label in labels if label is not None), None)
        current = first
        for i, label in enumerate(labels):
            if label is None:
                effective[i] = current
            else:
                current = label
    groups: list[tuple[str | None, list[Word]]] = []
    for word, label in zip(words, effective, strict=True):
        if groups and groups[-1][0] == label:
            groups[-1][1].append(word)
        else:
            groups.append((label, [word]))
    return groups


_PART_SUFFIX = re.compile(r"\.\d+$")


def part_id(segment_id: str, k: int) -> str:
    """The id of part ``k`` of a segment split by speaker: the first part keeps the segment's
    id (so its final closes the interims shown under that id), the next ones are
    ``<id>.1``, ``<id>.2``..."""
    return segment_id if k == 0 else f"{segment_id}.{k}"


def whole_id(segment_id: str) -> str:
    """The id of the segment a part (:func:`part_id`) was split from."""
    return _PART_SUFFIX.sub("", segment_id)


@dataclass(frozen=True, slots=True)
class SpeakerPart:
    """Consecutive words of one speaker in a segment, under the part's id."""

    segment_id: str
    label: str | None
    words: tuple[Word, ...]


def speaker_parts(
    segment_id: str, words: Sequence[Word], labels: Sequence[str | None]
) -> list[SpeakerPart]:
    """A segment's words split where the speaker changes (:func:`split_by_speaker`, unknown
    words joining the speaker before them), each part under its :func:`part_id`."""
    groups = split_by_speaker(words, labels, absorb_unknown=True)
    return [
        SpeakerPart(part_id(segment_id, k), label, tuple(group))
        for k, (label, group) in enumerate(groups)
    ]
