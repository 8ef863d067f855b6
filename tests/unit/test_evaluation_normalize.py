"""Text normalisers: Whisper's English and basic ones, greffier's French one (hand-checked)."""

from __future__ import annotations

import pytest

from greffier.evaluation.normalize import (
    normalize,
    normalize_basic,
    normalize_english,
    normalize_french,
    normalizer_for,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # titles spelled out, contractions expanded, spelled numbers to digits
        ("Mr. Smith said it's twenty-five past three.", "mister smith said it is 25 past 3"),
        # British spellings to American, case and punctuation dropped
        ("The Colour of the Theatre!", "the color of the theater"),
        # currency and ordinals
        ("He paid twenty dollars on the first of May", "he paid $20 on the 1st of may"),
        # bracketed annotations dropped, hesitations removed
        ("[Laughter] Um, well (coughs) OK", "well ok"),
    ],
)
def test_english_is_whispers_normaliser(text: str, expected: str) -> None:
    assert normalize_english(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # élisions split, typographic apostrophes, hours, accents kept
        ("L’homme est arrivé aujourd’hui à 9h30.", "l homme est arrivé aujourd hui à 9 heures 30"),
        # spelled numbers to digits; a lone "deux" stays a word
        ("Il a dix-sept ans et deux chats.", "il a 17 ans et deux chats"),
        # ... and the digit form meets it
        ("Il a 17 ans et 2 chats !", "il a 17 ans et deux chats"),
        # ligatures
        ("Le cœur, l’œuvre, ex æquo", "le coeur l oeuvre ex aequo"),
        # titles
        ("M. Dupont et Mme Martin", "monsieur dupont et madame martin"),
        # percent in both spellings
        ("50 % des gens", "50 pour cent des gens"),
        ("cinquante pour cent des gens", "50 pour cent des gens"),
        # narrow non-breaking space in a digit group, euro sign
        ("3\u202f000 €", "3000 euros"),
        ("trois mille euros", "3000 euros"),
        # ordinals in three spellings
        ("le troisième jour", "le 3e jour"),
        ("le 3ème jour", "le 3e jour"),
        # guillemets, hyphenated inversion, annotations
        ("« Bonjour », dit-il. [rires]", "bonjour dit il"),
        # decimal comma kept, in both spellings
        ("trois virgule cinq kilos", "3,5 kilos"),
        ("3.5 kilos", "3,5 kilos"),
        # years
        ("en deux mille vingt-quatre", "en 2024"),
        # the article "un" is not a number
        ("un homme", "un homme"),
        ("non\u00a0!", "non"),
    ],
)
def test_french_normaliser(text: str, expected: str) -> None:
    assert normalize_french(text) == expected


def test_basic_normaliser_for_other_languages() -> None:
    assert normalize_basic("Hallo, Welt! (Lachen) Straße") == "hallo welt straße"
    assert normalize("¿Qué tal?", "es") == "qué tal"


def test_normaliser_chosen_by_language_code() -> None:
    assert normalizer_for("en") is normalize_english
    assert normalizer_for("en-GB") is normalize_english
    assert normalizer_for("fr_CA") is normalize_french
    assert normalizer_for("de") is normalize_basic
    assert normalizer_for(None) is normalize_basic
