"""What a final may do to confirmed words: the retry policy, as pure rules."""

from __future__ import annotations

import pytest

from greffier.asr.recovery import TEMPERATURES, Verdict, better, judge, kept_share, retry_plan

pytestmark = pytest.mark.unit

CONFIRMED = "printing in the only sense with which we are at present".split()


def test_an_empty_or_rejected_final_after_interims_is_decoded_again() -> None:
    assert judge("", [], CONFIRMED, shown=True) is Verdict.RETRY
    assert judge("compression_ratio", [], CONFIRMED, shown=True) is Verdict.RETRY
    assert judge("no_speech", [], [], shown=True) is Verdict.RETRY  # tentative words were shown


def test_a_proven_hallucination_or_nothing_shown_is_accepted_empty() -> None:
    assert judge("silence_phrase", [], CONFIRMED, shown=True) is Verdict.ACCEPT
    assert judge("no_speech", [], [], shown=False) is Verdict.ACCEPT
    assert judge("empty", [], [], shown=False) is Verdict.ACCEPT


def test_a_short_utterance_without_interims_gets_another_try_when_the_decode_doubted() -> None:
    assert judge("low_logprob", [], [], shown=False) is Verdict.RETRY
    assert judge("compression_ratio", [], [], shown=False) is Verdict.RETRY
    assert judge("", ["oui"], [], shown=False) is Verdict.ACCEPT


def test_a_final_that_loses_most_confirmed_words_is_decoded_again() -> None:
    assert judge("", ["printing", "in"], CONFIRMED, shown=True) is Verdict.RETRY
    # the same span written otherwise ("one two" as "1 2") is a rewrite, not a loss
    assert judge("", ["1", "2"], ["one", "two"], shown=True, covers=True) is Verdict.ACCEPT
    assert judge("", ["1"], ["one", "two"], shown=True, covers=False) is Verdict.RETRY
    whole = [*CONFIRMED, "concerned", "differs"]
    assert judge("", whole, CONFIRMED, shown=True) is Verdict.ACCEPT
    # a better decode may rewrite a few confirmed words: accepted
    rewritten = ["printing", "in", "the", "only", "sense", "with", "which", "we're", "present"]
    assert judge("", rewritten, CONFIRMED, shown=True) is Verdict.ACCEPT


def test_the_plan_drops_the_context_then_searches_wider() -> None:
    plan = retry_plan(1, had_context=True)
    assert [(a.with_context, a.beam_size) for a in plan] == [(False, 1), (False, 5)]
    assert plan[-1].temperatures == TEMPERATURES and TEMPERATURES[0] == 0.0
    assert [(a.with_context, a.beam_size) for a in retry_plan(5, had_context=False)] == [
        (False, 5)]


def test_kept_share_counts_confirmed_words_in_order() -> None:
    assert kept_share([], []) == 1.0
    assert kept_share(["a", "b", "c"], ["a", "b", "c", "d"]) == 0.75
    assert kept_share(["c", "b", "a"], ["a", "b", "c"]) == pytest.approx(1 / 3)


def test_better_prefers_keeping_confirmed_words_then_length() -> None:
    assert better(CONFIRMED, CONFIRMED[:3], CONFIRMED)
    assert not better(["x", "y", "z", "w", "v"], CONFIRMED[:3], CONFIRMED)
