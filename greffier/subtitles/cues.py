"""Subtitle cues from final transcript segments, following subtitling practice (pure).

:func:`segment_cues` turns segments into :class:`Cue` s in three steps:

1. Consecutive segments of one speaker (in start order) form a *run*; their words become
   tokens (a segment without words gets its text split and timed in proportion to length).
2. Each run is cut into cues by dynamic programming over cut positions. Hard rules: a cue
   holds at most ``max_lines`` lines of at most ``max_chars_per_line`` characters (a single
   word longer than a line stands alone on its line) and its speech lasts at most
   ``max_duration_s``. Costs: each cue, the quality of the cut (after sentence punctuation
   best, then clause punctuation, then before a conjunction/preposition, anything else
   worst; a pause makes a cut better, leaving an article or preposition dangling or a lone
   punctuation mark orphaned makes it worse), the line layout, pauses held inside a cue,
   and reading speeds above ``target_cps * cps_tolerance`` or cues too short to read.
   Lines: as few as the text needs; several lines are cut at the best break near the
   middle, the top line no longer than the bottom one where possible.
3. Timing: a cue spans its words, lengthened into the following silence to reach
   ``min_duration_s`` and the reading time at ``target_cps``, never past ``max_duration_s``
   nor closer than ``min_gap_s`` to the next cue. Where speech overlaps (two speakers at
   once), a cue is shortened to make room for the next one, down to ``min_squeezed_s``,
   and the next one waits for it: cues never overlap.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from greffier.core.errors import ConfigurationError
from greffier.core.text import CLAUSE_END, SENTENCE_END
from greffier.core.types import Speaker, TranscriptSegment


@dataclass(frozen=True, slots=True)
class CueRules:
    """Line, reading-speed and timing rules of subtitle cues."""

    max_chars_per_line: int = 42
    max_lines: int = 2
    target_cps: float = 17.0
    """Reading speed, in characters per second (spaces and punctuation included)."""
    min_duration_s: float = 1.0
    max_duration_s: float = 7.0
    min_gap_s: float = 0.08
    """Gap kept between consecutive cues (2 frames at 25 fps)."""
    cps_tolerance: float = 1.0
    """Reading speeds up to ``target_cps * cps_tolerance`` cost nothing when cutting."""
    min_squeezed_s: float = 0.5
    """Shortest duration of a cue cut short by the next one (overlapping speech)."""

    def __post_init__(self) -> None:
        if self.max_chars_per_line < 1 or self.max_lines < 1:
            raise ValueError("a cue needs at least one line of at least one character")
        if not self.target_cps > 0 or self.cps_tolerance <= 0:
            raise ValueError("the reading speed and its tolerance must be positive")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise ValueError("durations must satisfy 0 < min_duration_s <= max_duration_s")
        if self.min_gap_s < 0:
            raise ValueError("min_gap_s cannot be negative")
        if not 0 < self.min_squeezed_s <= self.min_duration_s:
            raise ValueError("min_squeezed_s must lie in (0, min_duration_s]")


DEFAULT = CueRules()
"""Common broadcast and streaming practice (Netflix timed-text style guide, close to the BBC
subtitle guidelines): 2 lines of 42 characters, 17 characters per second (Netflix's adult
figure, taken as a ceiling: no tolerance), cues of 1 s (Netflix allows 5/6 s) to 7 s, and
2 frames (0.08 s) between cues."""

FR_TV = CueRules(
    max_chars_per_line=36,
    max_lines=2,
    target_cps=12.0,
    min_duration_s=1.0,
    max_duration_s=7.0,
    min_gap_s=0.08,
    cps_tolerance=1.2,
)
"""French television for deaf and hard-of-hearing viewers: *Charte relative à la qualité du
sous-titrage à destination des personnes sourdes ou malentendantes* (CSA, now Arcom,
December 2011). The charter limits pre-recorded subtitles to 2 lines (3 live) and sets
reading times of 12 characters for 1 s, 20 for 2 s, 36 for 3 s and 60 for 4 s, with a
20 % tolerance: hence 12 cps and ``cps_tolerance=1.2`` (≈14.4 cps, the 4-second figure is
15 cps), and 1 s as the shortest cue. The charter fixes no line length; 36 characters is
the usual line of French TV subtitling (the 40-column Teletext/DVB grid less margins and
control characters) and matches the charter's 3-second unit. 7 s and 2 frames at 25 fps
are kept from common practice."""

PROFILES: dict[str, CueRules] = {"default": DEFAULT, "fr-tv": FR_TV}
"""Caption line rules by the name ``--profile`` and ``?profile=`` take."""


def cue_rules(profile: str) -> CueRules:
    """The cue rules named ``profile`` (any case); a ConfigurationError names the known ones."""
    try:
        return PROFILES[profile.strip().lower()]
    except KeyError:
        raise ConfigurationError(
            f"unknown caption profile {profile!r}",
            hint=f"choose one of: {', '.join(PROFILES)}",
        ) from None


@dataclass(frozen=True, slots=True)
class Cue:
    """One subtitle: lines shown together from ``start`` to ``end`` (seconds)."""

    start: float
    end: float
    lines: tuple[str, ...]
    speaker: Speaker

    @property
    def text(self) -> str:
        """The lines joined by spaces."""
        return " ".join(self.lines)


CONNECTIVES = frozenset(
    """
    and but or nor so yet because that which who whom whose where when while if although
    though than to of in on at for with from by about into as after before since until unless
    whether
    et mais ou donc ni car que qui quand lorsque puisque parce comme si de du des à au aux
    dans pour par sur sous avec sans en vers chez entre pendant depuis dont où puis alors
    ensuite afin avant après contre selon malgré
    """.split()
)
"""Words a cut may precede (English and French conjunctions, relatives, prepositions)."""
ELIDED_CONNECTIVES = ("qu'", "d'", "lorsqu'", "puisqu'", "jusqu'")
DETERMINERS = frozenset(
    """
    the a an my your his her its our their this these those
    le la les un une mon ma mes ton ta tes son sa ses notre nos votre vos leur leurs ce cet
    cette ces
    """.split()
)
"""Words a cut should not follow (articles, possessives, demonstratives)."""

_TRAILING = "\"'»)]”’"
_AROUND = ".,;:!?…\"'«»()[]“”‘’¿¡"

# Cut costs by kind: after a sentence, after a clause, before a connective, anything else.
_CUE_BREAK = (0.0, 1.5, 4.5, 7.0)
_LINE_BREAK = (0.0, 0.5, 1.0, 2.0)
_CUE_DANGLING = 3.0
_LINE_DANGLING = 1.0
_ORPHAN = 20.0
_PAUSE_BONUS = 3.0
"""Cost removed from a cut per second of pause (up to one second)."""
_CUE_COST = 1.5
_HELD_PAUSE = 4.0
"""Cost per second of pause held inside a cue, beyond ``_HELD_PAUSE_FREE_S``."""
_HELD_PAUSE_FREE_S = 0.5
_FAST_READING = 6.0
_MAX_EXCESS = 3.0
"""Reading too fast costs in proportion to the excess speed (up to this ratio) and to the
share of a full cue the text fills, so that cutting fast speech finer gains nothing."""
_SHORT_CUE = 8.0
_IMBALANCE = 3.0
_TOP_HEAVY = 2.0
_MIN_RESERVED_LINE = 0.5
"""A speaker prefix is reserved only while it leaves half a line or more."""


@dataclass(slots=True)
class _Token:
    text: str
    start: float
    end: float


@dataclass(slots=True)
class _Draft:
    start: float
    end: float
    lines: tuple[str, ...]
    speaker: Speaker
    chars: int


def _bare(token: str) -> str:
    return token.lower().strip(_AROUND).replace("’", "'")


def _break_kind(before: str, after: str) -> int:
    """0: after a sentence, 1: after a clause, 2: before a connective, 3: anything else."""
    tail = before.rstrip(_TRAILING)
    if tail.endswith(SENTENCE_END):
        return 0
    if tail.endswith(CLAUSE_END):
        return 1
    bare = _bare(after)
    if bare in CONNECTIVES or after.lower().replace("’", "'").startswith(ELIDED_CONNECTIVES):
        return 2
    return 3


def _dangling(before: str) -> bool:
    bare = _bare(before)
    return bare in DETERMINERS or (bare in CONNECTIVES and not before.endswith(CLAUSE_END))


def _orphaned(before: str, after: str) -> bool:
    """A cut that would leave punctuation alone (``Bonjour | !``) or an opening quote."""
    return not after.strip(_AROUND) or before in ("«", "“", "(", "[", "-", "—", "–")


def _tokens(segment: TranscriptSegment) -> list[_Token]:
    words = [(" ".join(w.text.split()), w.start, w.end) for w in segment.words]
    words = [w for w in words if w[0]]
    if words:
        return [_Token(text, start, end) for text, start, end in words]
    parts = segment.text.split()
    if not parts:
        return []
    weights = [len(p) + 1 for p in parts]
    total = sum(weights)
    span = max(0.0, segment.end - segment.start)
    out, t = [], segment.start
    for part, weight in zip(parts, weights, strict=True):
        step = span * weight / total
        out.append(_Token(part, t, t + step))
        t += step
    return out


def _runs(segments: Iterable[TranscriptSegment]) -> list[tuple[Speaker, list[_Token]]]:
    """Tokens of consecutive same-speaker segments, with times made non-decreasing."""
    runs: list[tuple[Speaker, list[_Token]]] = []
    for segment in sorted(segments, key=lambda s: (s.start, s.end)):
        tokens = _tokens(segment)
        if not tokens:
            continue
        if runs and runs[-1][0] == segment.speaker:
            runs[-1][1].extend(tokens)
        else:
            runs.append((segment.speaker, tokens))
    for _, tokens in runs:
        start = end = 0.0
        for tok in tokens:
            start = max(start, tok.start if math.isfinite(tok.start) else start)
            end = max(end, start, tok.end if math.isfinite(tok.end) else start)
            tok.start, tok.end = start, end
    return runs


class _Layout:
    """Line layout of token ranges of one run."""

    def __init__(self, tokens: Sequence[_Token], rules: CueRules, reserve: int) -> None:
        self.tokens = tokens
        self.rules = rules
        self.reserve = reserve
        self.prefix = [0]
        for tok in tokens:
            self.prefix.append(self.prefix[-1] + len(tok.text))
        self.line_break = [0.0] * (len(tokens) + 1)
        for k in range(1, len(tokens)):
            before, after = tokens[k - 1].text, tokens[k].text
            cost = _LINE_BREAK[_break_kind(before, after)]
            cost += _LINE_DANGLING if _dangling(before) else 0.0
            cost += _ORPHAN if _orphaned(before, after) else 0.0
            self.line_break[k] = cost

    def width(self, a: int, b: int) -> int:
        return self.prefix[b] - self.prefix[a] + (b - a - 1)

    def cap(self, line: int, first: int) -> int:
        reserve = self.reserve if first == 0 and line == 0 else 0
        return self.rules.max_chars_per_line - reserve

    def fits(self, a: int, b: int, line: int, first: int) -> bool:
        return b - a == 1 or self.width(a, b) <= self.cap(line, first)

    def count(self, i: int, j: int) -> int:
        """Fewest lines holding tokens ``i:j`` (greedy filling is optimal)."""
        lines, a = 0, i
        while a < j:
            b = a + 1
            while b < j and self.fits(a, b + 1, lines, i):
                b += 1
            lines += 1
            a = b
        return lines

    def best(self, i: int, j: int) -> tuple[float, tuple[int, ...]] | None:
        """Cost and line starts of the best layout of tokens ``i:j``, None if none fits."""
        m = self.count(i, j)
        if m > self.rules.max_lines:
            return None
        if m == 1:
            return 0.0, (i,)
        if m == 2:
            return self._two(i, j)
        return self._many(i, j, m)

    def _effective(self, a: int, b: int, line: int, first: int) -> int:
        reserve = self.reserve if first == 0 and line == 0 else 0
        return self.width(a, b) + reserve

    def _two(self, i: int, j: int) -> tuple[float, tuple[int, ...]] | None:
        found: tuple[float, tuple[int, ...]] | None = None
        limit = self.rules.max_chars_per_line
        for b in range(i + 1, j):
            if not (self.fits(i, b, 0, i) and self.fits(b, j, 1, i)):
                continue
            top, bottom = self._effective(i, b, 0, i), self._effective(b, j, 1, i)
            cost = self.line_break[b] + _IMBALANCE * abs(top - bottom) / limit
            cost += _TOP_HEAVY * max(0, top - bottom) / limit
            if found is None or cost < found[0]:
                found = (cost, (i, b))
        return found

    def _many(self, i: int, j: int, m: int) -> tuple[float, tuple[int, ...]] | None:
        limit = self.rules.max_chars_per_line
        mean = (self.width(i, j) + self.reserve * (i == 0)) / m
        inf = math.inf
        # cost[k][b]: tokens i:b laid out in k lines; back[k][b]: start of line k.
        cost = [[inf] * (j + 1) for _ in range(m + 1)]
        back = [[0] * (j + 1) for _ in range(m + 1)]
        cost[0][i] = 0.0
        for k in range(1, m + 1):
            for b in range(i + 1, j + 1):
                for a in range(b - 1, i - 1, -1):
                    if not self.fits(a, b, k - 1, i):
                        break
                    if cost[k - 1][a] == inf:
                        continue
                    line = abs(self._effective(a, b, k - 1, i) - mean) / limit * _IMBALANCE
                    c = cost[k - 1][a] + line + (self.line_break[b] if b < j else 0.0)
                    if c < cost[k][b]:
                        cost[k][b], back[k][b] = c, a
        if cost[m][j] == inf:
            return None
        starts, b = [], j
        for k in range(m, 0, -1):
            b = back[k][b]
            starts.append(b)
        return cost[m][j], tuple(reversed(starts))

    def lines(self, starts: tuple[int, ...], j: int) -> tuple[str, ...]:
        ends = (*starts[1:], j)
        return tuple(
            " ".join(t.text for t in self.tokens[a:b]) for a, b in zip(starts, ends, strict=True)
        )


def _cut_run(
    speaker: Speaker, tokens: list[_Token], rules: CueRules, reserve: int, run_limit: float
) -> list[_Draft]:
    """Cut one run into cues by dynamic programming over cut positions."""
    n = len(tokens)
    layout = _Layout(tokens, rules, reserve)
    gap = [0.0] + [max(0.0, tokens[k].start - tokens[k - 1].end) for k in range(1, n)]
    held = [0.0]
    for k in range(1, n):
        held.append(held[-1] + _HELD_PAUSE * max(0.0, gap[k] - _HELD_PAUSE_FREE_S))
    cut = [0.0] * (n + 1)
    for k in range(1, n):
        before, after = tokens[k - 1].text, tokens[k].text
        c = _CUE_BREAK[_break_kind(before, after)] - _PAUSE_BONUS * min(gap[k], 1.0)
        c += _CUE_DANGLING if _dangling(before) else 0.0
        c += _ORPHAN if _orphaned(before, after) else 0.0
        cut[k] = c
    fast = rules.target_cps * rules.cps_tolerance
    capacity = rules.max_lines * rules.max_chars_per_line

    best = [math.inf] * (n + 1)
    back: list[tuple[int, tuple[int, ...]]] = [(0, ())] * (n + 1)
    best[0] = 0.0
    for j in range(1, n + 1):
        limit = tokens[j].start - rules.min_gap_s if j < n else run_limit - rules.min_gap_s
        for i in range(j - 1, -1, -1):
            span = tokens[j - 1].end - tokens[i].start
            if j - i > 1 and span > rules.max_duration_s:
                break
            laid = layout.best(i, j)
            if laid is None:
                break
            start = tokens[i].start
            avail = min(rules.max_duration_s, max(limit - start, span))
            chars = layout.width(i, j)
            cost = best[i] + _CUE_COST + laid[0] + held[j - 1] - held[i]
            cost += cut[j] if j < n else 0.0
            excess = chars / max(avail, 1e-3) / fast - 1.0
            if excess > 0:
                cost += _FAST_READING * min(excess, _MAX_EXCESS) * chars / capacity
            if avail < rules.min_duration_s:
                cost += _SHORT_CUE * (rules.min_duration_s - avail) / rules.min_duration_s
            if cost < best[j]:
                best[j], back[j] = cost, (i, laid[1])
    drafts: list[_Draft] = []
    j = n
    while j > 0:
        i, starts = back[j]
        lines = layout.lines(starts, j)
        text_chars = sum(len(line) for line in lines) + len(lines) - 1
        drafts.append(_Draft(tokens[i].start, tokens[j - 1].end, lines, speaker, text_chars))
        j = i
    drafts.reverse()
    return drafts


def _time(drafts: list[_Draft], rules: CueRules) -> list[Cue]:
    """Display times: extended for reading, trimmed for the next cue, never overlapping."""
    cues: list[Cue] = []
    prev_end = -math.inf
    for k, d in enumerate(drafts):
        start = max(d.start, prev_end + rules.min_gap_s, 0.0)
        needed = max(rules.min_duration_s, d.chars / rules.target_cps)
        want = min(max(d.end, start + needed), start + rules.max_duration_s)
        limit = drafts[k + 1].start - rules.min_gap_s if k + 1 < len(drafts) else math.inf
        end = max(min(want, limit), start + min(rules.min_squeezed_s, want - start))
        cues.append(Cue(start, end, d.lines, d.speaker))
        prev_end = end
    return cues


def speaker_prefix(speaker: Speaker) -> str:
    """The ``Name: `` written before a cue when the speaker changes."""
    return f"{speaker.display}: "


def segment_cues(
    segments: Iterable[TranscriptSegment],
    rules: CueRules = DEFAULT,
    *,
    reserve_speaker_prefix: bool = False,
) -> list[Cue]:
    """Cues of final segments, in time order and non-overlapping, one speaker each.

    ``reserve_speaker_prefix`` keeps room for :func:`speaker_prefix` on the first line of the
    first cue of each speaker's run (as SRT writes it), when that leaves half a line or more.
    """
    runs = _runs(segments)
    starts = sorted(tokens[0].start for _, tokens in runs)
    drafts: list[tuple[float, int, int, _Draft]] = []
    for r, (speaker, tokens) in enumerate(runs):
        reserve = len(speaker_prefix(speaker)) if reserve_speaker_prefix else 0
        if rules.max_chars_per_line - reserve < rules.max_chars_per_line * _MIN_RESERVED_LINE:
            reserve = 0
        last = tokens[-1].start
        later = bisect.bisect_right(starts, last)
        run_limit = starts[later] if later < len(starts) else math.inf
        for c, d in enumerate(_cut_run(speaker, tokens, rules, reserve, run_limit)):
            drafts.append((d.start, r, c, d))
    drafts.sort(key=lambda x: x[:3])
    return _time([d for *_, d in drafts], rules)
