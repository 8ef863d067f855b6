"""Scores with their standard definitions, computed by the reference libraries.

* WER = (S + D + I) / N over words, CER the same over characters (spaces included), N the
  reference length, through ``jiwer`` (Levenshtein alignment). "Raw" scores compare the texts
  as written (whitespace collapsed only); "normalised" ones first pass both sides through a
  normaliser of ``greffier.evaluation.normalize``. Corpus scores sum the counts over pairs.
* DER and JER through ``pyannote.metrics`` (``greffier.diarization.metrics``), with a collar
  and optional skipping of overlapped speech.
* cpWER (concatenated minimum-permutation WER, CHiME-6) through ``meeteval``.

The libraries are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greffier.core.errors import MissingDependencyError
from greffier.core.types import SpeakerTurn
from greffier.diarization.metrics import Uem, der_components, jaccard_error_rate


def _jiwer() -> Any:
    try:
        import jiwer
    except ImportError as e:
        raise MissingDependencyError.for_extra("jiwer", "bench") from e
    return jiwer


@dataclass(frozen=True, slots=True)
class ErrorCounts:
    """Alignment counts of hypotheses against references (words or characters)."""

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def reference_length(self) -> int:
        """N = hits + substitutions + deletions."""
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """(S + D + I) / N; an empty reference scores 0 with no insertion, 1 with some."""
        n = self.reference_length
        if n == 0:
            return float(self.insertions > 0)
        return self.errors / n

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "rate": self.rate,
            "errors": self.errors,
            "reference_length": self.reference_length,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "hits": self.hits,
        }


Texts = str | Sequence[str]
Normalizer = Callable[[str], str]


def _pairs(
    references: Texts, hypotheses: Texts, normalizer: Normalizer | None
) -> list[tuple[str, str]]:
    refs = [references] if isinstance(references, str) else list(references)
    hyps = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if normalizer is not None:
        refs = [normalizer(r) for r in refs]
        hyps = [normalizer(h) for h in hyps]
    return [(" ".join(r.split()), " ".join(h.split())) for r, h in zip(refs, hyps, strict=True)]


def word_errors(
    references: Texts, hypotheses: Texts, normalizer: Normalizer | None = None
) -> ErrorCounts:
    """Word alignment counts of one pair or of paired lists (corpus counts), after
    ``normalizer`` on both sides when given (raw otherwise)."""
    jiwer = _jiwer()
    total = ErrorCounts()
    for ref, hyp in _pairs(references, hypotheses, normalizer):
        if not ref:
            total += ErrorCounts(insertions=len(hyp.split()))
            continue
        out = jiwer.process_words(ref, hyp)
        total += ErrorCounts(out.hits, out.substitutions, out.deletions, out.insertions)
    return total


def char_errors(
    references: Texts, hypotheses: Texts, normalizer: Normalizer | None = None
) -> ErrorCounts:
    """Character alignment counts (spaces count as characters, as in ``jiwer.cer``)."""
    jiwer = _jiwer()
    total = ErrorCounts()
    for ref, hyp in _pairs(references, hypotheses, normalizer):
        if not ref:
            total += ErrorCounts(insertions=len(hyp))
            continue
        out = jiwer.process_characters(ref, hyp)
        total += ErrorCounts(out.hits, out.substitutions, out.deletions, out.insertions)
    return total


def wer(references: Texts, hypotheses: Texts, normalizer: Normalizer | None = None) -> float:
    """Corpus word error rate."""
    return word_errors(references, hypotheses, normalizer).rate


def cer(references: Texts, hypotheses: Texts, normalizer: Normalizer | None = None) -> float:
    """Corpus character error rate."""
    return char_errors(references, hypotheses, normalizer).rate


@dataclass(frozen=True, slots=True)
class DiarizationScore:
    """DER with its components (seconds) and JER."""

    der: float
    jer: float
    missed_s: float
    false_alarm_s: float
    confusion_s: float
    reference_speech_s: float

    def as_dict(self) -> dict[str, float]:
        return {
            "der": self.der,
            "jer": self.jer,
            "missed_s": self.missed_s,
            "false_alarm_s": self.false_alarm_s,
            "confusion_s": self.confusion_s,
            "reference_speech_s": self.reference_speech_s,
        }


def diarization_score(
    reference: Sequence[SpeakerTurn],
    hypothesis: Sequence[SpeakerTurn],
    *,
    collar: float = 0.0,
    skip_overlap: bool = False,
    uem: Uem | None = None,
) -> DiarizationScore:
    """DER = (missed + false alarm + confusion) / reference speech, and JER, by
    ``pyannote.metrics`` with the optimal speaker mapping. ``collar`` is the total width (s)
    forgiven around each reference boundary (pyannote's convention: +-collar/2);
    ``skip_overlap`` leaves out regions where reference speakers overlap; ``uem`` the scored
    regions (default: 0 to the last end)."""
    c = der_components(reference, hypothesis, uem=uem, collar=collar, skip_overlap=skip_overlap)
    j = jaccard_error_rate(reference, hypothesis, uem=uem, collar=collar, skip_overlap=skip_overlap)
    return DiarizationScore(
        der=c["diarization error rate"],
        jer=j,
        missed_s=c["missed detection"],
        false_alarm_s=c["false alarm"],
        confusion_s=c["confusion"],
        reference_speech_s=c["total"],
    )


@dataclass(frozen=True, slots=True)
class CpWerScore:
    """cpWER and its counts; ``assignment`` pairs reference and hypothesis speakers (None for a
    speaker without a counterpart)."""

    cpwer: float
    errors: int
    reference_length: int
    substitutions: int
    deletions: int
    insertions: int
    assignment: tuple[tuple[str | None, str | None], ...]


def cp_wer(
    reference: Mapping[str, str],
    hypothesis: Mapping[str, str],
    normalizer: Normalizer | None = None,
) -> CpWerScore:
    """cpWER: each speaker's words concatenated, hypothesis speakers mapped to reference
    speakers by the permutation with the fewest word errors (unmatched speakers count all
    their words as deletions or insertions), errors / reference words; by ``meeteval``."""
    try:
        from meeteval.wer import cp_word_error_rate
    except ImportError as e:
        raise MissingDependencyError.for_extra("meeteval", "bench") from e
    norm = normalizer or (lambda s: s)
    ref = {str(k): " ".join(norm(v).split()) for k, v in reference.items()}
    hyp = {str(k): " ".join(norm(v).split()) for k, v in hypothesis.items()}
    r = cp_word_error_rate(ref, hyp, reference_sort=False, hypothesis_sort=False)
    return CpWerScore(
        cpwer=float(r.error_rate) if r.length else float(r.errors > 0),
        errors=int(r.errors),
        reference_length=int(r.length),
        substitutions=int(r.substitutions),
        deletions=int(r.deletions),
        insertions=int(r.insertions),
        assignment=tuple((a, b) for a, b in r.assignment),
    )


def real_time_factor(processing_s: float, audio_s: float) -> float | None:
    """Processing time per second of audio (< 1: faster than real time)."""
    return processing_s / audio_s if audio_s > 0 else None
