"""Where a live segment is cut and which audio a decode hears: pure rules of the streaming
transcriber (:mod:`greffier.asr.streaming`), on stream times in seconds or samples."""

from __future__ import annotations

from collections.abc import Sequence

from greffier.core.text import CLAUSE_END, SENTENCE_END
from greffier.core.types import Word

MIN_CUT_S = 2.0
"""A cut leaves at least this much of the segment in the final (from its start)."""


def _ends_with(word: Word, marks: tuple[str, ...]) -> bool:
    return word.text.rstrip().endswith(marks)


def cut_point(
    confirmed: Sequence[Word],
    tentative: Sequence[Word] = (),
    *,
    earliest_end_s: float,
    after_tentative: bool = False,
    within_tentative: bool = False,
    clauses: bool = False,
    at_limit: bool = False,
    stalled: bool = False,
) -> int | None:
    """Index, in ``confirmed + tentative``, of the last word a long segment is finalised at,
    or None to wait.

    A sentence end counts once a word follows it and that word does not start in lower case:
    Whisper puts a full stop wherever its audio stops ("for our purpose." then "may be
    considered..."), and cutting there breaks the sentence. By default both are confirmed
    words; with ``after_tentative`` the following word may be the first tentative one; with
    ``within_tentative`` the sentence end itself may be tentative (the latest decode heard the
    whole segment, as a final's decode would, and went on after that sentence). With
    ``clauses``, failing a sentence end, a confirmed clause end (",", ";", ":") followed by a
    confirmed word counts. With ``at_limit`` (the segment reached its longest), failing both,
    the last confirmed word. Words ending before ``earliest_end_s`` are never cut at, except
    when ``stalled`` (the latest decode stopped writing well before the end of its audio):
    then the cut is after its last word, whatever it is.
    """
    shown = list(confirmed) + list(tentative)
    if stalled and shown:
        return len(shown) - 1
    if within_tentative:
        last = len(shown) - 2
    elif after_tentative and tentative:
        last = len(confirmed) - 1
    else:
        last = len(confirmed) - 2
    for i in range(last, -1, -1):
        if shown[i].end < earliest_end_s:
            break
        following = shown[i + 1].text.strip()
        if _ends_with(shown[i], SENTENCE_END) and not following[:1].islower():
            return i
    if clauses:
        for i in range(len(confirmed) - 2, -1, -1):
            if confirmed[i].end < earliest_end_s:
                break
            if _ends_with(confirmed[i], CLAUSE_END):
                return i
    if at_limit and confirmed:
        return len(confirmed) - 1
    return None


def context_start(start: int, *, buffer_start: int, context: int, pause_end: int) -> int:
    """First sample a decode of ``[start, ...)`` hears: up to ``context`` samples before the
    segment, never before the buffer nor before ``pause_end``, the end of the pause that ended
    the previous utterance (no context when the segment starts before it). Whisper, given the
    end of a sentence and a silence before new speech, often stops after that sentence and
    returns nothing of the new words."""
    return max(buffer_start, start - context, min(pause_end, start))


def words_after(words: Sequence[Word], offset_s: float, boundary_s: float) -> tuple[Word, ...]:
    """Words of a decode that started at ``offset_s``, on the stream timeline, without those
    of the acoustic context (their middle before ``boundary_s``)."""
    return tuple(
        w.shifted(offset_s) for w in words if offset_s + (w.start + w.end) / 2 >= boundary_s
    )
