"""Subtitle cues: line, timing and reading-speed rules, and the cut preferences."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greffier.core.errors import ConfigurationError
from greffier.core.types import Speaker, TranscriptSegment, Word
from greffier.subtitles.cues import (
    DEFAULT,
    FR_TV,
    Cue,
    CueRules,
    cue_rules,
    segment_cues,
    speaker_prefix,
)

pytestmark = pytest.mark.unit

EPS = 1e-6
ALICE = Speaker("alice-1", "Alice")
BOB = Speaker("bob-2", "Bob Martin")
ROOM = Speaker("room-3", "Salle 3", "2")
SPEAKERS = (ALICE, BOB, ROOM)


def spoken(text: str, start: float = 0.0, speaker: Speaker = ALICE, rate: float = 0.3,
           language: str = "en") -> TranscriptSegment:
    """A segment read at ``rate`` s a word, pausing after sentences (0.5 s) and clauses
    (0.25 s)."""
    words, t = [], start
    for w in text.split():
        words.append(Word(t, t + rate * 0.9, " " + w))
        t += rate + (0.5 if w[-1] in ".?!…" else 0.25 if w[-1] in ",;:" else 0.0)
    return TranscriptSegment("s", speaker, start, t, text, language, tuple(words))


# ----------------------------------------------------------------------------- properties


@dataclass(frozen=True)
class Case:
    segments: list[TranscriptSegment]
    words: dict[Speaker, list[Word]]


SHORT = ["oui", "non", "bien", "budget", "vote", "équipe", "très", "où", "çà", "œuvre",
         "meeting", "plan", "we", "it", "is", "go", "x", "à", "é"]
LONG = ["anticonstitutionnellement", "extraordinairement", "internationalisation",
        "Pneumonoultramicroscopicsilicovolcanoconiosis-related-disorders",
        "désinstitutionnalisation-de-la-procédure-budgétaire"]
SMALL = ["et", "mais", "que", "qui", "de", "à", "dans", "pour", "and", "but", "that", "to",
         "of", "the", "le", "la", "l'équipe", "qu'il", "!", "?", "«", "»"]
PUNCT = ["", "", "", "", ",", ".", "?", "!", "…", ";", ":"]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Random meetings. Hypothesis draws the shape; a seeded generator fills the words (a
    word-by-word draw would make the suite slow)."""
    speakers = SPEAKERS[: draw(st.integers(1, 3))]
    n_segments = draw(st.integers(1, 6))
    max_words = draw(st.integers(1, 30))
    long_share = draw(st.sampled_from([0.0, 0.05, 0.3]))
    pause_share = draw(st.sampled_from([0.0, 0.1, 0.5]))
    overlap = draw(st.booleans())
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))

    free = dict.fromkeys(speakers, 0.0)  # when each speaker's previous segment ended
    segments: list[TranscriptSegment] = []
    words: dict[Speaker, list[Word]] = {s: [] for s in speakers}
    t = 0.0
    for k in range(n_segments):
        speaker = rnd.choice(speakers)
        # Starts strictly increase; other speakers may overlap, the same one never does.
        t = max(t + rnd.uniform(0.01, 4.0), free[speaker] + rnd.uniform(0.0, 2.0))
        if not overlap:
            t = max(t, *free.values())
        seg_words, w_t = [], t
        for _ in range(rnd.randint(1, max_words)):
            roll = rnd.random()
            text = (rnd.choice(LONG) if roll < long_share
                    else rnd.choice(SMALL) if roll < 0.4 else rnd.choice(SHORT))
            text += rnd.choice(PUNCT)
            if rnd.random() < pause_share:
                w_t += rnd.uniform(0.3, 3.0)
            elif rnd.random() < 0.7:
                w_t += rnd.uniform(0.0, 0.3)
            duration = 0.0 if rnd.random() < 0.05 else rnd.uniform(0.02, 1.5)
            seg_words.append(Word(w_t, w_t + duration, " " + text, rnd.random()))
            w_t += duration
        with_words = rnd.random() < 0.8 or len(seg_words) == 1
        text = " ".join(w.text.strip() for w in seg_words)
        segments.append(TranscriptSegment(
            f"s{k}", speaker, t, w_t, text, "fr", tuple(seg_words) if with_words else ()))
        if with_words:
            words[speaker] += seg_words
        else:  # timed by the segment: only the text counts
            words[speaker] += [Word(t, w_t, w.text) for w in seg_words]
        free[speaker] = w_t
    rnd.shuffle(segments)
    return Case(segments, words)


random_rules = st.builds(
    CueRules,
    max_chars_per_line=st.integers(8, 50),
    max_lines=st.integers(1, 3),
    target_cps=st.floats(8.0, 25.0),
    min_duration_s=st.floats(0.6, 2.0),
    max_duration_s=st.floats(2.0, 8.0),
    min_gap_s=st.sampled_from([0.0, 0.04, 0.08, 0.2]),
    cps_tolerance=st.floats(1.0, 1.5),
    min_squeezed_s=st.just(0.5),
)


def check_cues(cues: list[Cue], case: Case, rules: CueRules) -> None:
    # Lines: at most max_lines, each within the limit unless it is one over-long word.
    for cue in cues:
        assert 1 <= len(cue.lines) <= rules.max_lines
        for line in cue.lines:
            assert line and line == line.strip()
            assert len(line) <= rules.max_chars_per_line or " " not in line, line
    # Time order, no overlap, the gap kept, positive durations within the maximum.
    for k, cue in enumerate(cues):
        assert 0 <= cue.start < cue.end
        assert cue.end - cue.start <= rules.max_duration_s + EPS
        needed = min(rules.max_duration_s,
                     max(rules.min_duration_s, len(cue.text) / rules.target_cps))
        if k + 1 < len(cues):
            nxt = cues[k + 1]
            assert cue.start <= nxt.start
            assert nxt.start - cue.end >= rules.min_gap_s - EPS
            no_room = nxt.start - cue.end <= rules.min_gap_s + EPS
        else:
            no_room = False
        # At least the minimum duration and the reading time, unless the next cue is at
        # the closest it may be.
        assert cue.end - cue.start >= needed - EPS or no_room
        assert cue.end - cue.start >= min(rules.min_squeezed_s, needed) - EPS
    # Each speaker's words, all of them once, in order; a cue holds one speaker's words.
    for speaker, words in case.words.items():
        mine = [c for c in cues if c.speaker == speaker]
        assert " ".join(c.text for c in mine) == " ".join(w.text.strip() for w in words)
        # A cue never starts before its first word.
        k = 0
        for cue in mine:
            assert cue.start >= words[k].start - EPS
            k += len(cue.text.split())
    assert {c.speaker for c in cues} <= set(case.words)


PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(cases())
def test_default_profile_properties(case: Case) -> None:
    check_cues(segment_cues(case.segments, DEFAULT), case, DEFAULT)


@PROPERTY
@given(cases())
def test_fr_tv_profile_properties(case: Case) -> None:
    check_cues(segment_cues(case.segments, FR_TV), case, FR_TV)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), random_rules, st.booleans())
def test_any_rules_properties(case: Case, rules: CueRules, reserve: bool) -> None:
    check_cues(segment_cues(case.segments, rules, reserve_speaker_prefix=reserve), case, rules)


# ------------------------------------------------------------------- cut preferences


def texts(cues: list[Cue]) -> list[tuple[str, ...]]:
    return [c.lines for c in cues]


def test_english_cuts_after_sentences_then_clauses() -> None:
    cues = segment_cues([spoken(
        "So the plan is simple. First we finish the prototype by the end of the month, "
        "then we test it with real users, and if everything goes well we ship it in "
        "September.")])
    assert texts(cues) == [
        ("So the plan is simple.",),
        ("First we finish the prototype", "by the end of the month,"),
        ("then we test it with real users,",),
        ("and if everything goes well", "we ship it in September."),
    ]


def test_french_cuts_after_sentences_then_clauses() -> None:
    cues = segment_cues([spoken(
        "Alors le plan est simple. D'abord nous finissons le prototype avant la fin du mois, "
        "ensuite nous le testons avec de vrais utilisateurs, et si tout se passe bien nous "
        "le livrons en septembre.", language="fr")], FR_TV)
    assert texts(cues) == [
        ("Alors le plan est simple.",),
        ("D'abord nous finissons le prototype", "avant la fin du mois,"),
        ("ensuite nous le testons", "avec de vrais utilisateurs,"),
        ("et si tout se passe bien", "nous le livrons en septembre."),
    ]


def test_english_without_punctuation_cuts_before_conjunctions() -> None:
    cues = segment_cues([spoken(
        "we need to check the numbers of the last quarter and the projections that the "
        "finance team sent us yesterday before we decide anything")])
    assert texts(cues) == [
        ("we need to check the numbers", "of the last quarter and the projections"),
        ("that the finance team sent us", "yesterday before we decide anything"),
    ]


def test_french_without_punctuation_cuts_before_conjunctions() -> None:
    cues = segment_cues([spoken(
        "il faut vérifier les chiffres du dernier trimestre et les projections que l'équipe "
        "financière nous a envoyées hier avant de décider quoi que ce soit",
        language="fr")], FR_TV)
    assert [c.lines[0].split()[0] for c in cues] == ["il", "et", "avant"]
    assert cues[0].lines == ("il faut vérifier les chiffres", "du dernier trimestre")


@pytest.mark.parametrize(("text", "rules"), [
    ("Several large wooden boxes arrived yesterday morning from the harbour", DEFAULT),
    ("Plusieurs grandes caisses arrivèrent hier matin du port", FR_TV),
])
def test_two_lines_are_balanced_and_bottom_heavy(text: str, rules: CueRules) -> None:
    (cue,) = segment_cues([spoken(text)], rules)
    top, bottom = cue.lines
    assert len(top) <= len(bottom) <= len(top) + 12


def test_a_line_is_kept_whole_when_it_fits() -> None:
    (cue,) = segment_cues([spoken("Good morning to all of you.")])
    assert cue.lines == ("Good morning to all of you.",)


def test_an_over_long_word_stands_alone_on_its_line() -> None:
    long_word = "Pneumonoultramicroscopicsilicovolcanoconiosis-related"
    cues = segment_cues([spoken(f"and so it is {long_word} indeed")])
    lines = [line for c in cues for line in c.lines]
    assert long_word in lines
    assert all(len(line) <= 42 for line in lines if line != long_word)


def test_punctuation_is_never_orphaned_at_a_cut() -> None:
    cues = segment_cues([spoken("Est-ce que vous avez vraiment lu tout le document jusqu'au "
                                "bout ? Oui , absolument et je le recommande", language="fr")],
                        FR_TV)
    for cue in cues:
        for line in cue.lines:
            assert line.split()[0] not in ("?", ",", "!")


# ------------------------------------------------------------------------ timing


def test_short_cue_lasts_the_minimum_when_silence_follows() -> None:
    seg = TranscriptSegment("s", ALICE, 10.0, 10.3, "Yes.", "en", (Word(10.0, 10.3, " Yes."),))
    (cue,) = segment_cues([seg])
    assert cue.start == 10.0 and cue.end == pytest.approx(11.0)


def test_cue_is_extended_for_reading_but_never_into_the_next() -> None:
    fast = spoken("This sentence is spoken much faster than anyone could read it.", rate=0.12)
    later = spoken("Okay.", start=fast.end + 4.0, speaker=BOB)
    first, second = segment_cues([fast, later])
    assert first.end - first.start >= len(first.text) / DEFAULT.target_cps - EPS
    soon = spoken("Okay.", start=fast.end + 0.2, speaker=BOB)
    first, second = segment_cues([fast, soon])
    assert first.end == pytest.approx(second.start - DEFAULT.min_gap_s)


def test_long_speech_is_cut_within_the_maximum_duration() -> None:
    seg = spoken(" ".join(["word"] * 60), rate=0.4)
    cues = segment_cues([seg])
    assert len(cues) >= 4  # 24 s of speech
    assert all(c.end - c.start <= DEFAULT.max_duration_s + EPS for c in cues)


def test_overlapping_speakers_never_share_or_overlap_cues() -> None:
    a = spoken("I think we should postpone the vote until next week.", start=0.0)
    b = spoken("No, we decided it last time already.", start=0.5, speaker=BOB)
    cues = segment_cues([b, a])
    assert {c.speaker for c in cues} == {ALICE, BOB}
    for x, y in zip(cues, cues[1:], strict=False):
        assert x.end + DEFAULT.min_gap_s <= y.start + EPS
    assert " ".join(c.text for c in cues if c.speaker == BOB) == b.text


def test_segment_without_words_is_timed_by_the_segment() -> None:
    seg = TranscriptSegment("s", ALICE, 5.0, 9.0, "Bonjour à tous, merci d'être venus.", "fr")
    (cue,) = segment_cues([seg], FR_TV)
    assert cue.start == 5.0 and cue.end >= 9.0 - EPS
    assert cue.text == "Bonjour à tous, merci d'être venus."


def test_empty_segments_give_no_cue() -> None:
    assert segment_cues([TranscriptSegment("s", ALICE, 0.0, 1.0, "  ", "en")]) == []
    assert segment_cues([]) == []


def test_room_is_kept_for_the_speaker_prefix() -> None:
    seg = spoken("We will review the quarterly figures and then vote on the budget proposal.",
                 speaker=BOB)
    cues = segment_cues([seg], reserve_speaker_prefix=True)
    assert len(speaker_prefix(BOB) + cues[0].lines[0]) <= DEFAULT.max_chars_per_line
    plain = segment_cues([seg])
    assert " ".join(c.text for c in plain) == " ".join(c.text for c in cues)


@pytest.mark.parametrize("kwargs", [
    {"max_chars_per_line": 0}, {"max_lines": 0}, {"target_cps": 0.0},
    {"min_duration_s": 3.0, "max_duration_s": 2.0}, {"min_gap_s": -0.1},
    {"min_squeezed_s": 0.0},
])
def test_rules_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CueRules(**kwargs)  # type: ignore[arg-type]


def test_profiles() -> None:
    assert (DEFAULT.max_chars_per_line, DEFAULT.max_lines, DEFAULT.target_cps) == (42, 2, 17.0)
    assert (DEFAULT.min_duration_s, DEFAULT.max_duration_s) == (1.0, 7.0)
    assert FR_TV.max_lines == 2 and 36 <= FR_TV.max_chars_per_line <= 40
    assert 12.0 <= FR_TV.target_cps <= 15.0


def test_profiles_by_name() -> None:
    assert cue_rules("default") is DEFAULT and cue_rules(" FR-TV ") is FR_TV
    with pytest.raises(ConfigurationError, match="cinema") as err:
        cue_rules("cinema")
    assert "fr-tv" in str(err.value)
