"""Language detection per stream: held, re-checked on the first finals, forced wins."""

from __future__ import annotations

import pytest

from greffier.asr.language import LanguageTracker

pytestmark = pytest.mark.unit


def test_detected_then_held_after_enough_speech() -> None:
    t = LanguageTracker()
    assert t.language is None
    t.observe("fr", 0.9, 1.0)
    assert t.language is None
    t.observe("fr", 0.9, 2.5)
    assert t.language == "fr" and not t.confirmed


def test_a_badly_recognised_first_segment_is_overturned_by_the_finals() -> None:
    t = LanguageTracker()
    t.observe("en", 0.5, 3.5)  # a short, noisy start heard as English
    assert t.language == "en"
    assert t.for_final(6.0) is None  # finals re-check while provisional
    assert t.for_final(1.0) == "en"  # too short to judge: the held language
    t.observe("fr", 0.95, 6.0)
    assert t.language == "fr" and t.changes == 1
    t.observe("fr", 0.95, 7.0)
    assert t.confirmed and t.for_final(6.0) == "fr"
    t.observe("en", 0.99, 30.0)  # once confirmed, held
    assert t.language == "fr"


def test_forced_language_wins_and_is_never_rechecked() -> None:
    t = LanguageTracker("fr")
    t.observe("en", 1.0, 30.0)
    assert t.language == "fr" and t.for_final(10.0) == "fr" and t.confirmed
    t.force(None)
    assert t.language is None


def test_a_long_silence_starts_detection_again() -> None:
    t = LanguageTracker()
    t.observe("fr", 0.9, 20.0)
    assert t.confirmed
    t.silence(61.0)
    assert t.language is None and not t.confirmed


def test_english_only_models_are_english() -> None:
    assert LanguageTracker(multilingual=False).language == "en"
