"""LocalAgreement-n: confirm the words that n successive hypotheses agree on.

A pure policy over :class:`~greffier.core.types.Word` sequences with absolute times, as in
whisper_streaming's HypothesisBuffer, generalised to n hypotheses. Confirmed words never
change afterwards; the interim caption is the confirmed prefix plus the latest tentative tail.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence

from greffier.core.types import Word

_PUNCT = re.compile(r"[^\w']+", re.UNICODE)
_SEAM_TOLERANCE_S = 0.1
_MAX_SEAM_NGRAM = 5


def word_key(word: Word) -> str:
    """Comparison key: lower case, punctuation stripped."""
    return _PUNCT.sub("", word.text.lower())


def strip_seam(
    previous: Sequence[Word], words: Sequence[Word], max_words: int = _MAX_SEAM_NGRAM
) -> list[Word]:
    """``words`` without a head that repeats the last words of ``previous`` (the longest such
    overlap, up to ``max_words``): what a decode that heard the end of earlier words wrote
    again at the seam."""
    for k in range(min(max_words, len(words), len(previous)), 0, -1):
        if [word_key(w) for w in words[:k]] == [word_key(w) for w in previous[-k:]]:
            return list(words[k:])
    return list(words)


class LocalAgreement:
    """Confirm words once ``n`` successive hypotheses of the same audio agree on them."""

    def __init__(self, n: int = 2) -> None:
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n = n
        self._confirmed: list[Word] = []
        self._recent: deque[tuple[Word, ...]] = deque(maxlen=n)

    @property
    def confirmed(self) -> tuple[Word, ...]:
        """Words confirmed so far, oldest first."""
        return tuple(self._confirmed)

    @property
    def confirmed_end(self) -> float:
        """End time of the last confirmed word (0 when none)."""
        return self._confirmed[-1].end if self._confirmed else 0.0

    def _tail(self, words: Sequence[Word]) -> list[Word]:
        """The part of a hypothesis after the confirmed words, seam duplicates removed."""
        if not self._confirmed:
            return [w for w in words if word_key(w)]
        limit = self.confirmed_end - _SEAM_TOLERANCE_S
        tail = [w for w in words if w.start > limit and word_key(w)]
        return strip_seam(self._confirmed, tail)

    def insert(self, words: Sequence[Word]) -> tuple[tuple[Word, ...], tuple[Word, ...]]:
        """Add a hypothesis of the whole buffer so far.

        Returns:
            (newly confirmed words, tentative words after the confirmed prefix)
        """
        self._recent.append(tuple(words))
        tails = [self._tail(h) for h in self._recent]
        latest = tails[-1]
        newly: list[Word] = []
        if len(tails) == self.n:
            for i, word in enumerate(latest):
                key = word_key(word)
                if all(len(t) > i and word_key(t[i]) == key for t in tails[:-1]):
                    newly.append(word)
                else:
                    break
        self._confirmed.extend(newly)
        return tuple(newly), tuple(latest[len(newly) :])

    def confirm_all(self, words: Sequence[Word]) -> tuple[Word, ...]:
        """Confirm a hypothesis outright (used for finals); returns the words added."""
        tail = self._tail(words)
        self._confirmed.extend(tail)
        self._recent.clear()
        return tuple(tail)

    def cut(self, until: float) -> tuple[Word, ...]:
        """Remove and return the confirmed words ending at or before ``until``."""
        cut = [w for w in self._confirmed if w.end <= until + 1e-6]
        self._confirmed = self._confirmed[len(cut) :]
        self._recent.clear()
        return tuple(cut)

    def reset(self) -> None:
        """Forget everything (a new segment starts)."""
        self._confirmed.clear()
        self._recent.clear()
