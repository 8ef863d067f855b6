"""Text normalisers applied to both sides before a normalised WER or CER.

* English: Whisper's ``EnglishTextNormalizer`` (the ``whisper-normalizer`` package, pinned
  0.1.15, a copy of ``openai-whisper``'s code): lower case, no punctuation, British spellings
  to American, contractions expanded, spelled numbers to digits ("twenty-five" -> "25").
  Figures so normalised compare with published Whisper results.
* French: :func:`normalize_french`, documented step by step below.
* Any other language: Whisper's ``BasicTextNormalizer`` (lower case, bracketed and
  parenthesised phrases dropped, marks, symbols and punctuation to spaces).

The packages are imported on first use; ``text2num`` (a dependency of ``whisper-normalizer``)
spells French numbers as digits, and without it French numbers stay as written.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from greffier.core.errors import MissingDependencyError

Normalizer = Callable[[str], str]

_APOSTROPHES = str.maketrans(dict.fromkeys("\u2019\u2018\u02bc\u02b9`\u00b4\u2032", "'"))
_LIGATURES = str.maketrans({"\u0153": "oe", "\u00e6": "ae"})
_ANNOTATION = re.compile(r"\[[^\]]*\]|<[^>]*>")
_ABBREVIATIONS = (
    (re.compile(r"(?<!\w)mmes\.?(?!\w)"), "mesdames"),
    (re.compile(r"(?<!\w)mme\.?(?!\w)"), "madame"),
    (re.compile(r"(?<!\w)mlle\.?(?!\w)"), "mademoiselle"),
    (re.compile(r"(?<!\w)mm\.(?!\w)"), "messieurs"),
    (re.compile(r"(?<!\w)m\.(?!\w)"), "monsieur"),
)
_SYMBOLS = (("%", " pour cent "), ("\u20ac", " euros "), ("&", " et "))
_DIGIT_GROUP = re.compile(r"(?<=\d) (?=\d{3}(?!\d))")
_HOURS = re.compile(r"(?<![\w,])(\d{1,2}) ?h ?(\d{2})?(?!\w)")
_ORDINAL = re.compile(r"(?<![\w,])(\d+) ?(?:e|è|ème|eme|ième)(?!\w)")
_DECIMAL = re.compile(r"(?<=\d)[.,](?=\d)")
_PERCENT = re.compile(r"(?<=\d)\s+pour\s+100(?!\d)")
_SMALL = {"0": "zéro", "1": "un", "2": "deux"}
_SMALL_NUMBER = re.compile(r"(?<![\w,])[012](?![\w,])")


@lru_cache(maxsize=1)
def _whisper_normalizers() -> tuple[Any, Any]:
    try:
        from whisper_normalizer.basic import BasicTextNormalizer
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as e:
        raise MissingDependencyError.for_extra("whisper_normalizer", "bench") from e
    return EnglishTextNormalizer(), BasicTextNormalizer()


@lru_cache(maxsize=1)
def _alpha2digit() -> Callable[[str, str], str] | None:
    try:
        from text_to_num import alpha2digit
    except ImportError:
        return None
    return alpha2digit  # type: ignore[no-any-return]


def normalize_english(text: str) -> str:
    """Whisper's English normaliser."""
    return str(_whisper_normalizers()[0](text)).strip()


def normalize_basic(text: str) -> str:
    """Whisper's basic (language-independent) normaliser."""
    return " ".join(str(_whisper_normalizers()[1](text)).split())


def _punctuation_to_space(text: str) -> str:
    out = []
    for i, c in enumerate(text):
        cat = unicodedata.category(c)
        if cat[0] in "PS" and not (
            c == "," and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        ):
            out.append(" ")
        else:
            out.append(c)
    return "".join(out)


def normalize_french(text: str) -> str:
    """French text in one written form, step by step:

    1. Unicode NFKC (non-breaking and narrow spaces become spaces, compatibility ligatures such
       as "ﬁ" are split), lower case; "œ" -> "oe", "æ" -> "ae".
    2. Annotations in square or angle brackets ("[rires]", "<unk>") are dropped.
    3. Typographic apostrophes become "'", then every apostrophe a space: elisions are split
       ("l'homme" -> "l homme", "aujourd'hui" -> "aujourd hui").
    4. Titles spelled out: "M." -> "monsieur", "Mme" -> "madame", "Mlle" -> "mademoiselle".
    5. "%" -> "pour cent", "€" -> "euros", "&" -> "et".
    6. Numbers as digits: digit groups joined ("3 000" -> "3000"), decimal point or comma ->
       comma, "9h30" -> "9 heures 30", ordinals "3e"/"3ème"/"troisième" -> "3e", spelled
       numbers to digits with ``text2num`` ("dix-sept" -> "17", "deux mille" -> "2000"; it
       leaves a lone "un", "deux" as words, being articles or too ambiguous), then lone 0, 1
       and 2 are written as words ("2 chats" -> "deux chats") so both spellings meet.
    7. Hyphens, punctuation and symbols become spaces (a comma between digits stays);
       accents are kept; whitespace collapsed.
    """
    text = unicodedata.normalize("NFKC", text).lower().translate(_LIGATURES)
    text = _ANNOTATION.sub(" ", text)
    text = text.translate(_APOSTROPHES).replace("'", " ")
    for pattern, word in _ABBREVIATIONS:
        text = pattern.sub(word, text)
    for symbol, word in _SYMBOLS:
        text = text.replace(symbol, word)
    text = _DIGIT_GROUP.sub("", text)
    text = _DECIMAL.sub(",", text)
    text = _HOURS.sub(lambda m: f"{m[1]} heures {m[2] or ''}", text)
    alpha2digit = _alpha2digit()
    if alpha2digit is not None:
        text = alpha2digit(text, "fr")
    text = _ORDINAL.sub(r"\1e", text)
    text = _PERCENT.sub(" pour cent", text)
    text = _SMALL_NUMBER.sub(lambda m: _SMALL[m[0]], text)
    text = _punctuation_to_space(text)
    return " ".join(text.split())


def normalizer_for(language: str | None) -> Normalizer:
    """The normaliser of a language code ("en", "en-US", "fr", "fr-CA", ...); Whisper's basic
    one for any other language or None."""
    base = (language or "").strip().lower().replace("_", "-").split("-")[0]
    if base == "en":
        return normalize_english
    if base == "fr":
        return normalize_french
    return normalize_basic


def normalize(text: str, language: str | None) -> str:
    """``text`` through :func:`normalizer_for` ``(language)``."""
    return normalizer_for(language)(text)


NORMALIZER_NAMES = {
    "en": "whisper EnglishTextNormalizer (whisper-normalizer 0.1.15)",
    "fr": "greffier normalize_french (text2num for numbers)",
    "other": "whisper BasicTextNormalizer (whisper-normalizer 0.1.15)",
}
"""What each normaliser is, for result files."""
