"""WER, CER, DER/JER and cpWER against hand-computed answers."""

from __future__ import annotations

import pytest

from greffier.core.types import SpeakerTurn as T
from greffier.evaluation.metrics import (
    ErrorCounts,
    cer,
    char_errors,
    cp_wer,
    diarization_score,
    real_time_factor,
    wer,
    word_errors,
)
from greffier.evaluation.normalize import normalize_english, normalize_french

pytestmark = pytest.mark.unit


def test_word_alignment_counts_each_kind_of_error() -> None:
    # one=one, two->too (S), three=three, four (D), five=five, six=six, seven (I):
    # 3 errors over 6 reference words; any other alignment costs more.
    c = word_errors("one two three four five six", "one too three five six seven")
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == (4, 1, 1, 1)
    assert c.reference_length == 6 and c.errors == 3
    assert c.rate == pytest.approx(0.5)


def test_corpus_wer_sums_counts_rather_than_averaging_rates() -> None:
    # 0 errors / 4 words and 1 error / 1 word: (0 + 1) / (4 + 1) = 0.2, not mean(0, 1) = 0.5.
    assert wer(["a b c d", "e"], ["a b c d", "f"]) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        wer(["a"], [])


def test_empty_texts() -> None:
    assert word_errors("a b", "") == ErrorCounts(deletions=2)
    assert word_errors("", "x y") == ErrorCounts(insertions=2)
    assert word_errors("", "").rate == 0.0
    assert word_errors("", "x").rate == 1.0


def test_raw_and_normalised_wer() -> None:
    # Raw: "Hello," != "hello" and "world!" != "world": 2 substitutions / 2 words.
    assert wer("Hello, world!", "hello world") == 1.0
    assert wer("Hello, world!", "hello world", normalize_english) == 0.0
    # Normalised: numbers in either spelling match; "colour" -> "color".
    assert wer("Twenty five colours", "25 colors", normalize_english) == 0.0
    assert wer("Il a dix-sept ans", "il a 17 ans.", normalize_french) == 0.0
    # Raw: "Il"/"il", "dix-sept"/"17" and "ans"/"ans." differ: 3 / 4.
    assert wer("Il a dix-sept ans", "il a 17 ans.") == pytest.approx(3 / 4)


def test_character_error_rate_counts_spaces() -> None:
    # "ab cd" -> "ab d": the "c" deleted, 1 / 5 characters (the space counts).
    c = char_errors("ab cd", "ab d")
    assert (c.deletions, c.reference_length) == (1, 5)
    assert cer("ab cd", "ab d") == pytest.approx(0.2)
    # "abcd" -> "abxde": c->x (S), e inserted: 2 / 4.
    assert cer("abcd", "abxde") == pytest.approx(0.5)
    assert cer("Été", "ete", normalize_french) == pytest.approx(2 / 3)  # accents are kept


# Reference: A speaks 0-10 s, B 10-20 s. Hypothesis: s1 0-8 s, s2 8-18 s.
# Best mapping s1->A, s2->B. Missed: 18-20 (2 s, nobody). Confusion: 8-10 (2 s, s2 = B over A).
# False alarm: none. DER = (2 + 0 + 2) / 20 = 0.2.
# JER: A with s1: 1 - |0-8| / |0-10| = 0.2; B with s2: 1 - |10-18| / |8-20| = 1 - 8/12 = 1/3;
# mean 0.2667.
# Collar 1 s (+-0.5 s around the reference boundaries 0, 10, 20): scored reference
# 0.5-9.5 and 10.5-19.5 = 18 s; missed 18-19.5 = 1.5 s; confusion 8-9.5 = 1.5 s;
# DER = 3 / 18 = 0.1667.
REF = [T(0.0, 10.0, "A"), T(10.0, 20.0, "B")]
HYP = [T(0.0, 8.0, "s1"), T(8.0, 18.0, "s2")]


def test_der_and_jer_on_a_known_rttm_pair() -> None:
    s = diarization_score(REF, HYP)
    assert s.der == pytest.approx(0.2)
    assert (s.missed_s, s.false_alarm_s, s.confusion_s, s.reference_speech_s) == pytest.approx(
        (2.0, 0.0, 2.0, 20.0))
    assert s.jer == pytest.approx((0.2 + 1 / 3) / 2)


def test_der_collar() -> None:
    s = diarization_score(REF, HYP, collar=1.0)
    assert s.reference_speech_s == pytest.approx(18.0)
    assert (s.missed_s, s.confusion_s) == pytest.approx((1.5, 1.5))
    assert s.der == pytest.approx(3 / 18)


def test_der_skip_overlap_and_false_alarm() -> None:
    # A 0-10, B 5-15 (overlap 5-10); the hypothesis has one speaker at a time, X 0-10, Y 10-15:
    # B is missed during the overlap (5 s of 20 s of reference speech): DER 0.25.
    ref = [T(0.0, 10.0, "A"), T(5.0, 15.0, "B")]
    hyp = [T(0.0, 10.0, "X"), T(10.0, 15.0, "Y")]
    assert diarization_score(ref, hyp).der == pytest.approx(0.25)
    # Without the overlapped 5-10 s, what is left (0-5 A, 10-15 B) is right: DER 0.
    assert diarization_score(ref, hyp, skip_overlap=True).der == pytest.approx(0.0)
    # A hypothesis turn where nobody speaks, 20-22 s, scored on 0-22 s: 2 s false alarm / 20.
    s = diarization_score(REF, [T(0.0, 10.0, "x"), T(10.0, 20.0, "y"), T(20.0, 22.0, "x")],
                          uem=(0.0, 22.0))
    assert (s.false_alarm_s, s.der) == pytest.approx((2.0, 0.1))


def test_cpwer_on_two_speakers() -> None:
    # Best permutation: A<->y (world->word, 1 substitution), B<->x ("and you" inserted, 2):
    # 3 errors / 7 reference words.
    r = cp_wer({"A": "hello world how are you", "B": "fine thanks"},
               {"x": "fine thanks and you", "y": "hello word how are you"})
    assert r.cpwer == pytest.approx(3 / 7)
    assert (r.substitutions, r.insertions, r.deletions) == (1, 2, 0)
    assert set(r.assignment) == {("A", "y"), ("B", "x")}
    # A speaker the hypothesis lacks: all their words are deletions.
    r = cp_wer({"A": "good morning", "B": "hello"}, {"x": "Good morning!"}, normalize_english)
    assert (r.errors, r.deletions, r.reference_length) == (1, 1, 3)


def test_real_time_factor() -> None:
    assert real_time_factor(2.0, 8.0) == 0.25
    assert real_time_factor(1.0, 0.0) is None
