"""Where a long live segment is cut, which audio a decode hears, and the seam between two
decodes: the pure rules of :mod:`greffier.asr.segmenting` and ``agreement.strip_seam``."""

from __future__ import annotations

import pytest

from greffier.asr.agreement import strip_seam
from greffier.asr.segmenting import context_start, cut_point, words_after
from greffier.core.types import Word

pytestmark = pytest.mark.unit


def say(text: str, start: float = 0.0, step: float = 0.4) -> tuple[Word, ...]:
    return tuple(
        Word(start + step * i, start + step * i + 0.3, " " + t) for i, t in enumerate(text.split())
    )


def test_a_sentence_end_is_cut_at_once_a_capitalised_word_follows() -> None:
    words = say("The printers came first. Then the binders arrived late")
    assert cut_point(words, earliest_end_s=0.0) == 3
    # the full stop Whisper writes where its audio stops is not a sentence end
    lower = say("for our purpose. may be considered as the art")
    assert cut_point(lower, earliest_end_s=0.0) is None
    # the last confirmed word is never cut at on its own: something must follow it
    assert cut_point(say("The printers came first."), earliest_end_s=0.0) is None
    # ... unless a tentative word may stand in for the next confirmed one
    nxt = (Word(2.0, 2.3, " Then"), Word(2.4, 2.7, " the"))
    assert cut_point(say("The printers came first."), nxt, earliest_end_s=0.0) is None
    first = say("The printers came first.")
    assert cut_point(first, nxt, earliest_end_s=0.0, after_tentative=True) == 3


def test_a_tentative_sentence_end_is_cut_at_only_when_allowed_and_followed() -> None:
    confirmed = say("The printers came")
    tentative = say("first. Then the", start=1.2)
    assert cut_point(confirmed, tentative, earliest_end_s=0.0, after_tentative=True) is None
    assert cut_point(confirmed, tentative, earliest_end_s=0.0, within_tentative=True) == 3
    # the full stop at the end of the latest hypothesis is where its audio stopped
    assert (
        cut_point(confirmed, say("first.", 1.2), earliest_end_s=0.0, within_tentative=True) is None
    )
    lower = say("first. then the", start=1.2)
    assert cut_point(confirmed, lower, earliest_end_s=0.0, within_tentative=True) is None


def test_the_latest_sentence_end_is_cut_at_but_never_too_early() -> None:
    words = say("Yes. The printers came first. Then the binders")
    assert cut_point(words, earliest_end_s=0.0) == 4
    # a sentence end before earliest_end_s leaves too short a final
    assert cut_point(words, earliest_end_s=2.0) is None


def test_clauses_and_the_length_limit_are_later_resorts() -> None:
    words = say("when the printers came, the binders left and")
    assert cut_point(words, earliest_end_s=0.0) is None
    assert cut_point(words, earliest_end_s=0.0, clauses=True) == 3
    assert cut_point(words, earliest_end_s=0.0, at_limit=True) == len(words) - 1
    assert cut_point((), earliest_end_s=0.0, clauses=True, at_limit=True) is None


def test_context_never_reaches_before_the_last_pause_or_the_buffer() -> None:
    # plenty of audio, the previous utterance ended long ago: the full context
    assert context_start(100_000, buffer_start=0, context=32_000, pause_end=10_000) == 68_000
    # the previous utterance's pause ended 0.5 s before: context starts there
    assert context_start(100_000, buffer_start=0, context=32_000, pause_end=92_000) == 92_000
    # a segment that starts before that pause ended gets no context
    assert context_start(100_000, buffer_start=0, context=32_000, pause_end=120_000) == 100_000
    assert context_start(100_000, buffer_start=80_000, context=32_000, pause_end=0) == 80_000


def test_words_of_the_context_are_dropped_by_their_middle() -> None:
    decoded = (Word(0.0, 0.5, " end."), Word(0.8, 1.4, " New"), Word(1.5, 1.9, " words"))
    kept = words_after(decoded, 10.0, 11.0)
    assert [w.text for w in kept] == [" New", " words"]
    assert kept[0].start == pytest.approx(10.8)


def test_a_seam_repeat_is_stripped_once_and_only_at_the_head() -> None:
    previous = say("the binders arrived late.")
    assert [w.text for w in strip_seam(previous, say("arrived late. And then"))] == [
        " And",
        " then",
    ]
    # a different word at the seam is kept, and so is a repeat further in
    assert len(strip_seam(previous, say("and late. late"))) == 3
    assert strip_seam((), say("late")) == list(say("late"))
    # at most max_words are compared
    assert len(strip_seam(previous, say("the binders arrived late. Now"), max_words=2)) == 5


def test_a_stalled_decode_is_cut_after_its_last_word_whatever_it_is() -> None:
    confirmed = say("The printers came")
    tentative = say("first", start=1.2)
    assert cut_point(confirmed, tentative, earliest_end_s=5.0) is None
    assert cut_point(confirmed, tentative, earliest_end_s=5.0, stalled=True) == 3
    assert cut_point((), (), earliest_end_s=0.0, stalled=True) is None
