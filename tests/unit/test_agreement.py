"""LocalAgreement on hypotheses Whisper really produced for growing prefixes of real clips
(``data/growing_hypotheses.json``, recorded with the base model every 0.5 s of audio)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from greffier.asr.agreement import LocalAgreement, word_key
from greffier.core.text import word_error_rate
from greffier.core.types import Word, join_words

pytestmark = pytest.mark.unit

RECORDED = json.loads((Path(__file__).parent / "data" / "growing_hypotheses.json").read_text())


def words(raw: list[list]) -> list[Word]:
    return [Word(s, e, t) for s, e, t in raw]


def w(text: str, start: float) -> Word:
    return Word(start, start + 0.3, " " + text)


def test_words_are_confirmed_when_two_hypotheses_agree() -> None:
    la = LocalAgreement(2)
    assert la.insert([w("hello", 0.0)]) == ((), (w("hello", 0.0),))
    new, tentative = la.insert([w("hello", 0.0), w("world", 0.4)])
    assert [x.text for x in new] == [" hello"] and [x.text for x in tentative] == [" world"]
    new, tentative = la.insert([w("Hello,", 0.0), w("world", 0.4), w("again", 0.8)])
    assert [x.text for x in new] == [" world"] and [x.text for x in tentative] == [" again"]
    assert join_words(la.confirmed) == "hello world"


def test_confirmed_words_survive_a_contradicting_hypothesis() -> None:
    la = LocalAgreement(2)
    la.insert([w("a", 0.0), w("b", 0.4)])
    la.insert([w("a", 0.0), w("b", 0.4)])
    new, tentative = la.insert([w("x", 0.0), w("y", 0.4), w("c", 0.8)])
    assert join_words(la.confirmed) == "a b" and new == ()
    assert [x.text for x in tentative] == [" c"]


def test_seam_duplicates_are_not_confirmed_twice() -> None:
    la = LocalAgreement(2)
    la.insert([w("one", 0.0), w("two", 0.5)])
    la.insert([w("one", 0.0), w("two", 0.5)])
    # The next hypotheses re-time "two" slightly later than it was confirmed.
    la.insert([w("one", 0.0), w("two", 0.75), w("three", 1.1)])
    la.insert([w("one", 0.0), w("two", 0.75), w("three", 1.1)])
    assert [word_key(x) for x in la.confirmed] == ["one", "two", "three"]


def test_higher_agreement_confirms_later() -> None:
    seq = [[w("a", 0)], [w("a", 0), w("b", 0.4)], [w("a", 0), w("b", 0.4)]]
    two, three = LocalAgreement(2), LocalAgreement(3)
    for h in seq:
        two.insert(h)
        three.insert(h)
    assert len(two.confirmed) == 2 and len(three.confirmed) == 1


@pytest.mark.parametrize("clip", sorted(RECORDED))
def test_on_recorded_hypotheses_confirmed_text_only_grows_and_matches_the_reference(clip) -> None:
    data = RECORDED[clip]
    la = LocalAgreement(2)
    shown_before: tuple[Word, ...] = ()
    for hyp in data["hypotheses"]:
        la.insert(words(hyp["words"]))
        confirmed = la.confirmed
        # never rewritten: the old confirmed words are a prefix of the new ones
        assert confirmed[: len(shown_before)] == shown_before
        # never ahead of the audio
        assert all(x.end <= hyp["audio_end"] + 0.05 for x in confirmed)
        shown_before = confirmed
    la.confirm_all(words(data["hypotheses"][-1]["words"]))
    result = word_error_rate([data["reference"]], [join_words(la.confirmed)])
    assert result.wer <= 0.15, join_words(la.confirmed)


def test_cut_removes_confirmed_words_up_to_a_time() -> None:
    la = LocalAgreement(1)
    la.insert([w("a", 0.0), w("b", 0.5), w("c", 1.0)])
    cut = la.cut(0.8)
    assert [x.text for x in cut] == [" a", " b"] and [x.text for x in la.confirmed] == [" c"]
