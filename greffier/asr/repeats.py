"""Repeated phrases: Whisper sometimes says a sentence twice where the audio says it once.

A pure rule on word keys (lower case, punctuation stripped). A *repeat* is a span of words
followed at once by a second copy of it that is

* exact, when the span is shorter than ``fuzzy_min_words``;
* within ``1`` edit per ``words_per_edit`` words otherwise (a word changed, added or dropped,
  "Jean-Carlos" written "Jean Carlos");
* or cut short at the end of the text ("... peu après le démarrage. ... peu après le démarr":
  Whisper ran out of audio mid-copy), its last word possibly a prefix of the word it copies.

People do repeat themselves, but not five words or more verbatim, back to back; sentences of
parallel structure ("he went to the shop on Monday, he went to the bank on Monday") differ by
more than the edits allowed at their length. The second copy is the one dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from greffier.asr.agreement import word_key
from greffier.core.types import Word

MIN_WORDS = 5
"""A repeat shorter than this is kept (people say "no, no" and "I think, I think")."""
FUZZY_MIN_WORDS = 10
"""From this length on, a second copy may differ from the first by a few edits."""
WORDS_PER_EDIT = 8
MIN_PREFIX_CHARS = 3
"""A truncated last word must keep at least this many characters of the word it copies."""


@dataclass(frozen=True, slots=True)
class Repeat:
    """``keys[first:second]`` is said again as ``keys[second:end]``."""

    first: int
    second: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.second


def _allowed_edits(n: int, fuzzy_min: int, per_edit: int) -> int:
    return 0 if n < fuzzy_min else max(1, n // per_edit)


def _same(a: str, b: str, *, truncated: bool) -> bool:
    if a == b:
        return True
    return truncated and len(b) >= MIN_PREFIX_CHARS and a.startswith(b)


def _edits(a: Sequence[str], b: Sequence[str], limit: int, *, truncated_tail: bool) -> int:
    """Word edit distance between ``a`` and ``b`` (``limit + 1`` once it exceeds ``limit``).

    Two words written as one ("Jean Carlos" / "Jean-Carlos") cost nothing; with
    ``truncated_tail`` the last word of ``b`` may be a prefix of its counterpart.
    """
    if abs(len(a) - len(b)) > limit + 2:
        return limit + 1
    inf = limit + 1
    d = [[inf] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            same = _same(a[i - 1], b[j - 1], truncated=truncated_tail and j == len(b))
            best = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (0 if same else 1))
            if j >= 2 and a[i - 1] == b[j - 2] + b[j - 1]:
                best = min(best, d[i - 1][j - 2])
            if i >= 2 and b[j - 1] == a[i - 2] + a[i - 1]:
                best = min(best, d[i - 2][j - 1])
            d[i][j] = min(best, inf)
        if min(d[i]) > limit:
            return inf
    return d[-1][-1]


def _anchored(keys: Sequence[str], first: int, second: int) -> bool:
    """Whether the two copies agree on one of their first words (a cheap filter)."""
    n = len(keys)
    for i, j in ((0, 0), (1, 1), (1, 2), (2, 1), (2, 2)):
        if first + i < second and second + j < n and keys[first + i] == keys[second + j]:
            return True
    return False


def find_repeat(
    keys: Sequence[str],
    *,
    seam: int | None = None,
    min_words: int = MIN_WORDS,
    fuzzy_min_words: int = FUZZY_MIN_WORDS,
    words_per_edit: int = WORDS_PER_EDIT,
) -> Repeat | None:
    """The longest repeat in ``keys`` (see the module docstring), or None.

    With ``seam``, only a second copy starting exactly at ``keys[seam]`` counts (the start of
    a final said again from the end of the previous one).
    """
    n = len(keys)
    best: Repeat | None = None
    best_score = (-1, 0, False)
    starts = [seam] if seam is not None else range(1, n)
    for second in starts:
        if second <= 0 or second >= n:
            continue
        for length in range(second, min_words - 1, -1):
            first = second - length
            if not _anchored(keys, first, second):
                continue
            found, edits = _match(
                keys[first:second], keys[second:], fuzzy_min_words, words_per_edit
            )
            # the longest copy, an edit counting against two words; then copies that start
            # on the same word
            score = (found - 2 * edits, -edits, keys[first] == keys[second])
            if found >= min_words and (best is None or score > best_score):
                best, best_score = Repeat(first, second, second + found), score
    return best


def _match(
    original: Sequence[str], rest: Sequence[str], fuzzy_min: int, per_edit: int
) -> tuple[int, int]:
    """How many words at the start of ``rest`` are a copy of ``original`` (0 if none), and
    with how many edits."""
    n = len(original)
    if len(rest) < n:
        # cut short by the end of the text: a copy of the start of ``original``
        allowed = _allowed_edits(len(rest), fuzzy_min, per_edit)
        fewest = allowed + 1
        for m in range(len(rest) - allowed - 1, len(rest) + allowed + 2):
            if 0 < m <= n:
                fewest = min(fewest, _edits(original[:m], rest, allowed, truncated_tail=True))
        return (len(rest), fewest) if fewest <= allowed else (0, 0)
    allowed = _allowed_edits(n, fuzzy_min, per_edit)
    best: tuple[int, int, int] | None = None  # (edits, distance from n, size)
    for size in range(max(1, n - allowed - 1), min(len(rest), n + allowed + 1) + 1):
        edits = _edits(original, rest[:size], allowed, truncated_tail=size == len(rest))
        if edits <= allowed and (best is None or (edits, abs(size - n)) < best[:2]):
            best = (edits, abs(size - n), size)
    return (best[2], best[0]) if best else (0, 0)


def drop_repeats(words: Sequence[Word], **options: int) -> tuple[tuple[Word, ...], int]:
    """``words`` with every second copy of a repeated phrase removed, and how many were."""
    out = list(words)
    removed = 0
    while True:
        keys = [word_key(w) for w in out]
        rep = find_repeat(keys, **options)
        if rep is None:
            return tuple(out), removed
        del out[rep.second : rep.end]
        removed += 1


def drop_seam_repeat(
    previous: Sequence[Word], words: Sequence[Word], *, min_words: int = 3, **options: int
) -> tuple[Word, ...]:
    """``words`` without a leading copy of the end of ``previous`` (the last final)."""
    if not previous or not words:
        return tuple(words)
    prev = [word_key(w) for w in previous]
    keys = prev + [word_key(w) for w in words]
    rep = find_repeat(keys, seam=len(prev), min_words=min_words, **options)
    if rep is None:
        return tuple(words)
    return tuple(words[rep.length :])
