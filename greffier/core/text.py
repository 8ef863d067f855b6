"""Text rules every layer shares: normalisation and word error rate (the one definition every
WER figure uses), sentence and clause ends, language codes ("auto" and case), and safe file
names.

Normalisation: Unicode NFKC, lower case, punctuation removed (apostrophes inside words and
hyphens become spaces or stay as in ``aujourd'hui``), whitespace collapsed. Numbers are not
spelled out: references and hypotheses are compared as written.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
"""Marks that end a sentence (Latin and full-width): where a live segment may be cut, where a
subtitle cue is best cut, and Whisper's sentence boundaries when timing words."""
CLAUSE_END = (",", ";", ":", "，", "；", "：")
"""Marks that end a clause: the next best place for those cuts."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_NON_WORD = re.compile(r"[^\w\s']+", re.UNICODE)
_LONE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")
_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]+")


def language_code(value: str | None) -> str | None:
    """The Whisper language ``value`` names (a setting, a request, a participant's attribute),
    stripped and lower-cased; None for ``auto`` or nothing: detect the language."""
    code = (value or "").strip().lower()
    return None if code in ("", "auto") else code


def safe_name(text: str, fallback: str) -> str:
    """``text`` as a file name (untrusted input): ASCII letters, digits, ``.``, ``_`` and
    ``-`` only (accents dropped, runs of anything else become ``-``, no leading or trailing
    ``-`` or ``.``); ``fallback`` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _UNSAFE_IN_NAMES.sub("-", ascii_text).strip("-.") or fallback


def normalize_text(text: str) -> str:
    """Lower-cased words without punctuation, single-spaced."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = text.replace("-", " ").replace("_", " ")
    text = _NON_WORD.sub(" ", text)
    text = _LONE_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


@dataclass(frozen=True, slots=True)
class WerResult:
    """Word error rate over a corpus: errors / reference words."""

    errors: int
    reference_words: int

    @property
    def wer(self) -> float:
        return self.errors / self.reference_words if self.reference_words else 0.0


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> WerResult:
    """Corpus WER after :func:`normalize_text` on both sides."""
    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses must pair up")
    errors = words = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = normalize_text(ref).split(), normalize_text(hyp).split()
        errors += edit_distance(r, h)
        words += len(r)
    return WerResult(errors, words)


def read_reference(path: Path) -> str:
    """A reference transcript: plain text, or the words of an STM file in time order."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() != ".stm":
        return text.strip()
    rows: list[tuple[float, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(";;"):
            continue
        fields = line.split(maxsplit=5)
        if len(fields) < 5:
            continue
        words = fields[5] if len(fields) > 5 else ""
        if words.startswith("<"):  # optional label field
            words = words.split(">", 1)[1] if ">" in words else ""
        rows.append((float(fields[3]), words.strip()))
    return " ".join(w for _, w in sorted(rows) if w)
