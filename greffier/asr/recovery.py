"""What a final may do to the words already shown: pure rules.

A final never takes away words that were shown as confirmed, unless they are shown to be a
hallucination (the guard recognised a known silence phrase). When the decode a final comes
from is rejected, comes back empty while interims showed text, or keeps too few of the
confirmed words, it is decoded again (:func:`retry_plan`): without acoustic context, then with
beam 5 and Whisper's temperature fallback. Failing that, the confirmed words are the final.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Whisper's temperature schedule."""
PROVEN_HALLUCINATION = "silence_phrase"
"""A guard rejection that proves the text was invented (a credit line, "thank you" said to
silence); other rejections (no speech, low probability, repetition) only doubt the decode."""
DOUBTFUL = frozenset({"low_logprob", "compression_ratio"})
"""Rejections worth a retry even when nothing was shown (the decoder heard something)."""
MIN_KEPT_SHARE = 0.6
"""A final that keeps less than this share of the confirmed words is decoded again."""


class Verdict(enum.StrEnum):
    """What to do with the decode a final would come from."""

    ACCEPT = "accept"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One more decode of a segment's audio for its final."""

    with_context: bool
    beam_size: int
    temperatures: tuple[float, ...] = (0.0,)


def retry_plan(beam_size: int, *, had_context: bool) -> tuple[Attempt, ...]:
    """The decodes to try, in order, after the first one failed."""
    plan: list[Attempt] = []
    if had_context:
        plan.append(Attempt(False, beam_size))
    plan.append(Attempt(False, max(5, beam_size), TEMPERATURES))
    return tuple(plan)


def kept_share(final: Sequence[str], confirmed: Sequence[str]) -> float:
    """Share of the confirmed word keys found, in order, in the final (longest common
    subsequence over the confirmed words; 1 when nothing was confirmed)."""
    if not confirmed:
        return 1.0
    prev = [0] * (len(final) + 1)
    for c in confirmed:
        cur = [0] * (len(final) + 1)
        for j, f in enumerate(final, 1):
            cur[j] = prev[j - 1] + 1 if c == f else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1] / len(confirmed)


def judge(
    rejected: str,
    final: Sequence[str],
    confirmed: Sequence[str],
    *,
    shown: bool,
    covers: bool = False,
) -> Verdict:
    """Accept the final decode, or decode again.

    Args:
        rejected: the guard's reason for rejecting the decode ("" when kept).
        final: word keys of the decode after the guard.
        confirmed: word keys shown as confirmed in the segment's interims.
        shown: whether any interim of the segment was shown.
        covers: whether the decode's words reach the end of the confirmed words in time (then
            it rewrites them, "one two" as "1 2", rather than losing them).
    """
    if rejected == PROVEN_HALLUCINATION:
        return Verdict.ACCEPT
    if not shown and not confirmed:
        # Nothing was on screen, so an empty final retracts nothing; but a short utterance
        # ("oui", a name) may have had no interim at all: a decode that only looked doubtful
        # or looped is worth one more try, silence is not.
        return Verdict.RETRY if rejected in DOUBTFUL else Verdict.ACCEPT
    if rejected or not final:
        return Verdict.RETRY
    if not covers and kept_share(final, confirmed) < MIN_KEPT_SHARE:
        return Verdict.RETRY
    return Verdict.ACCEPT


def better(candidate: Sequence[str], current: Sequence[str], confirmed: Sequence[str]) -> bool:
    """Whether a retried decode should replace the one kept so far."""
    return (kept_share(candidate, confirmed), len(candidate)) > (
        kept_share(current, confirmed),
        len(current),
    )
