"""Diarization scores (DER, JER through ``pyannote.metrics``), and RTTM read and written (the
one RTTM writer: minutes, benchmarks and data sets use it).

``pyannote.metrics`` is imported inside the scoring functions only; RTTM needs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

from greffier.core.errors import AudioFormatError, MissingDependencyError
from greffier.core.types import SpeakerTurn, one_line

Uem = tuple[float, float] | Sequence[tuple[float, float]]
"""Scored regions: one (start, end) pair or several."""
Turns = Sequence[SpeakerTurn]


def read_rttm(path: str | Path, *, uri: str | None = None) -> list[SpeakerTurn]:
    """The ``SPEAKER`` lines of an RTTM file as turns sorted by start (only those of ``uri``
    when given; the file id is the second field)."""
    turns = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise AudioFormatError(f"{path}:{number}: an RTTM SPEAKER line needs 8+ fields")
        if uri is not None and fields[1] != uri:
            continue
        start, duration = float(fields[3]), float(fields[4])
        turns.append(SpeakerTurn(start, start + duration, fields[7]))
    return sorted(turns, key=lambda t: (t.start, t.end, t.speaker))


def rttm_name(name: str) -> str:
    """A name safe in an RTTM field: one line, whitespace runs become underscores."""
    return "_".join(one_line(name).split()) or "unknown"


def write_rttm(turns: Iterable[SpeakerTurn], uri: str = "audio") -> str:
    """Turns as RTTM ``SPEAKER`` lines, in the order given: the file id ``uri`` and speaker
    names made one field each (:func:`rttm_name`), turns under a millisecond left out."""
    uri = rttm_name(uri)
    return "".join(
        f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {rttm_name(t.speaker)} "
        "<NA> <NA>\n"
        for t in turns
        if round(t.end - t.start, 3) > 0
    )


def _metrics() -> Any:
    try:
        import pyannote.core
        import pyannote.metrics.diarization
    except ImportError as e:
        raise MissingDependencyError.for_extra("pyannote.metrics", "diarization") from e
    return pyannote.core, pyannote.metrics.diarization


def _annotation(core: Any, turns: Iterable[SpeakerTurn]) -> Any:
    annotation = core.Annotation(uri="audio")
    for i, t in enumerate(turns):
        if t.end > t.start:
            annotation[core.Segment(t.start, t.end), i] = t.speaker
    return annotation


def _timeline(core: Any, uem: Uem | None, reference: Turns, hypothesis: Turns) -> Any:
    if uem is None:
        ends = [t.end for t in (*reference, *hypothesis)]
        regions: list[tuple[float, float]] = [(0.0, max(ends, default=0.0))]
    elif len(uem) == 2 and all(isinstance(x, int | float) for x in uem):
        regions = [(float(uem[0]), float(uem[1]))]  # type: ignore[arg-type]
    else:
        regions = [(float(a), float(b)) for a, b in uem]  # type: ignore[misc]
    return core.Timeline([core.Segment(a, b) for a, b in regions if b > a], uri="audio")


class Scoring(TypedDict, total=False):
    """How a diarization is scored (pyannote.metrics' options), by keyword."""

    uem: Uem | None
    """Scored (start, end) regions; None (default) scores from 0 to the last end of either
    side."""
    collar: float
    """Total width (s) forgiven around each reference boundary, +-collar/2 (pyannote's
    convention: NIST md-eval's ``-c 0.25`` is ``collar=0.5`` here); 0 by default."""
    skip_overlap: bool
    """Leave out regions where reference speakers overlap; False by default."""


def _score(
    metric_name: str, reference: Turns, hypothesis: Turns, rules: Scoring, *, detailed: bool
) -> Any:
    core, diar = _metrics()
    metric = getattr(diar, metric_name)(
        collar=rules.get("collar", 0.0), skip_overlap=rules.get("skip_overlap", False)
    )
    return metric(
        _annotation(core, reference),
        _annotation(core, hypothesis),
        uem=_timeline(core, rules.get("uem"), reference, hypothesis),
        detailed=detailed,
    )


def der_components(
    reference: Turns, hypothesis: Turns, **rules: Unpack[Scoring]
) -> dict[str, float]:
    """pyannote's DER components in seconds (``missed detection``, ``false alarm``,
    ``confusion``, ``total``) and ``diarization error rate``; ``rules`` as in
    :class:`Scoring`."""
    components = _score("DiarizationErrorRate", reference, hypothesis, rules, detailed=True)
    return {str(k): float(v) for k, v in components.items()}


def diarization_error_rate(reference: Turns, hypothesis: Turns, **rules: Unpack[Scoring]) -> float:
    """DER = (missed + false alarm + confusion) / reference speech, with the optimal mapping of
    hypothesis to reference speakers; ``rules`` as in :class:`Scoring`."""
    return der_components(reference, hypothesis, **rules)["diarization error rate"]


def jaccard_error_rate(reference: Turns, hypothesis: Turns, **rules: Unpack[Scoring]) -> float:
    """JER: mean over reference speakers of 1 - Jaccard index with their mapped hypothesis
    speaker (DIHARD II), so that every speaker counts equally whatever their talk time;
    ``rules`` as in :class:`Scoring`."""
    return float(_score("JaccardErrorRate", reference, hypothesis, rules, detailed=False))
