"""Append-only captions for clients that keep the first text of each segment id (pure).

La Suite Meet's caption view listens to the legacy ``publish_transcription`` event only, takes
one segment per event and ignores every later text of a segment id it has already shown. An
interim followed by its final under one id would stay frozen at the interim. So on that path
one track's caption updates are turned into a sequence of final, never revised pieces, each
under an id of its own (``<update id>-<k>``, ``k`` counting the track's pieces):

- an interim publishes the words newly confirmed since the last piece (confirmed: agreed on
  by ``agreement`` successive interims of the segment, two by default as the engine's
  LocalAgreement, or the count the caller passes);
- a final publishes the words of the final that no piece has shown yet, and nothing else.

The final is the truth, but a piece cannot be retracted. Which words of a final are "already
shown" is decided by aligning the final with the words shown and not yet settled by a final:
words equal after normalisation and less than :data:`MATCH_TOLERANCE_S` apart match, and the
final words up to the last match are covered. Words shown after the last match (the final
re-worded them) cover the final words that lie inside their time span, at most two final
words per shown word. Hence, by construction:

- nothing is shown twice, and every final word after the last shown word is published;
- a word the final dropped or re-worded stays on screen as it was confirmed (the only
  difference with the finals' text; none when the final keeps its confirmed words);
- an empty final (a retracted segment) publishes nothing;
- a cut final leaves the words shown after the cut pending, and the next segment, which
  starts with them, does not publish them again;
- the parts of a split final (a shared microphone) each settle their own stretch.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

from greffier.core.text import normalize_text
from greffier.core.types import CaptionUpdate, Word, join_words

MATCH_TOLERANCE_S = 1.0
"""Two equal words further apart than this are not the same word."""
_SHOWN_SLACK_S = 0.25
"""A final settles the shown words whose middle lies before its end plus this."""
_STALE_S = 0.3
"""Shown words ending this long before an update's first word are settled."""


@dataclass(frozen=True, slots=True)
class _Token:
    key: str
    word: Word | None
    text: str

    @property
    def mid(self) -> float | None:
        return None if self.word is None else (self.word.start + self.word.end) / 2


def _tokens(update: CaptionUpdate) -> tuple[_Token, ...]:
    if update.words:
        return tuple(_Token(normalize_text(w.text), w, w.text) for w in update.words)
    return tuple(_Token(normalize_text(t), None, t) for t in update.text.split())


def _common_prefix(a: tuple[_Token, ...], b: tuple[_Token, ...]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x.key != y.key:
            break
        n += 1
    return n


def _near(a: _Token, b: _Token) -> bool:
    if a.mid is None or b.mid is None:
        return True
    return abs(a.mid - b.mid) <= MATCH_TOLERANCE_S


def covered(shown: list[_Token], words: tuple[_Token, ...]) -> tuple[int, int]:
    """How many leading ``words`` the ``shown`` words already cover, and how many of the
    shown words that uses: (covered words, shown words used)."""
    if not shown or not words:
        return 0, 0
    matcher = difflib.SequenceMatcher(
        None, [t.key for t in shown], [t.key for t in words], autojunk=False
    )
    used = p = 0
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            i, j = block.a + k, block.b + k
            if _near(shown[i], words[j]):
                used, p = i + 1, j + 1
    rest = shown[used:]
    last_shown = rest[-1].word if rest else None
    if last_shown is not None:
        # shown words the final re-worded cover the final's words inside their span
        q, until = p, last_shown.end
        while q < len(words) and q - p < 2 * len(rest):
            word = words[q].word
            if word is None or (word.start + word.end) / 2 > last_shown.end:
                break
            q, until = q + 1, word.end
        if q > p:
            used += max(1, sum(1 for t in rest if t.mid is not None and t.mid <= until))
            p = q
    return p, used


class AppendOnlyCaptions:
    """One track's caption updates as append-only final pieces (see the module docstring)."""

    def __init__(self, agreement: int = 2) -> None:
        if agreement < 2:
            raise ValueError("confirming words takes at least two interims")
        self.agreement = agreement
        """Successive interims that must agree on a word before it is shown (when the caller
        passes no confirmed count)."""
        self._shown: list[_Token] = []
        """Words published in pieces and not yet settled by a final."""
        self._segment = ""
        self._recent: list[tuple[_Token, ...]] = []
        self._finished: set[str] = set()
        self._count = 0
        self.rewritten = 0
        """Final words that were covered by a shown word of another spelling."""

    def push(self, update: CaptionUpdate, confirmed: int | None = None) -> CaptionUpdate | None:
        """The piece to publish for ``update``, if any.

        ``confirmed`` is how many leading words of an interim are confirmed; when None, the
        words two successive interims of the segment agree on.
        """
        if update.segment_id in self._finished:
            return None  # a late interim of a finished segment
        tokens = _tokens(update)
        self._drop_stale(tokens)
        if not update.final:
            return self._interim(update, tokens, confirmed)
        self._finished.add(update.segment_id)
        if len(self._finished) > 256:
            self._finished.clear()
            self._finished.add(update.segment_id)
        self._segment, self._recent = "", []
        return self._final(update, tokens)

    def _drop_stale(self, tokens: tuple[_Token, ...]) -> None:
        first = tokens[0].word if tokens else None
        if first is None:
            return
        self._shown = [
            t for t in self._shown if t.word is None or t.word.end >= first.start - _STALE_S
        ]

    def _interim(
        self, update: CaptionUpdate, tokens: tuple[_Token, ...], confirmed: int | None
    ) -> CaptionUpdate | None:
        if self._segment != update.segment_id:
            self._segment, self._recent = update.segment_id, []
        if confirmed is None:
            previous = self._recent
            full = len(previous) == self.agreement - 1
            confirmed = min((_common_prefix(p, tokens) for p in previous), default=0) if full else 0
        self._recent = [*self._recent, tokens][-(self.agreement - 1) :]
        sure = tokens[: max(0, min(confirmed, len(tokens)))]
        p, _ = covered(self._shown, sure)
        new = sure[p:]
        if not new:
            return None
        self._shown.extend(new)
        return self._piece(update, new)

    def _final(self, update: CaptionUpdate, tokens: tuple[_Token, ...]) -> CaptionUpdate | None:
        p, used = covered(self._shown, tokens)
        if p:
            shown_keys = [t.key for t in self._shown[:used]]
            self.rewritten += sum(1 for t in tokens[:p] if t.key not in shown_keys)
        last = tokens[-1].word if tokens else None
        end = last.end if last is not None else update.end
        # the shown words left inside the final's span were dropped by it: settled
        self._shown = [t for t in self._shown[used:] if t.mid is not None and t.mid > end]
        new = tokens[p:]
        return self._piece(update, new) if new else None

    def _piece(self, update: CaptionUpdate, tokens: tuple[_Token, ...]) -> CaptionUpdate:
        words = tuple(t.word for t in tokens if t.word is not None)
        if len(words) == len(tokens):
            text, start, end = join_words(words), words[0].start, words[-1].end
        else:
            text, start, end = " ".join(t.text.strip() for t in tokens), update.start, update.end
        piece = replace(
            update,
            segment_id=f"{update.segment_id}-{self._count}",
            text=text,
            final=True,
            words=words,
            start=start,
            end=end,
            revision=0,
        )
        self._count += 1
        return piece
