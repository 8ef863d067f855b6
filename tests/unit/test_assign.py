"""Words to speakers: overlap, ties, gaps, tolerance, grouping."""

from __future__ import annotations

import random

import pytest

from greffier.core.types import SpeakerTurn, Word
from greffier.diarization.assign import (
    assign_speakers,
    part_id,
    speaker_parts,
    split_by_speaker,
    whole_id,
)

pytestmark = pytest.mark.unit


def w(start: float, end: float, text: str = " w") -> Word:
    return Word(start, end, text)


def t(start: float, end: float, speaker: str) -> SpeakerTurn:
    return SpeakerTurn(start, end, speaker)


def test_word_inside_a_turn_takes_its_speaker() -> None:
    turns = [t(0, 2, "1"), t(2, 4, "2")]
    assert assign_speakers([w(0.5, 0.9), w(2.5, 3.0)], turns) == ["1", "2"]


def test_word_across_a_change_takes_the_longer_overlap() -> None:
    turns = [t(0, 2, "1"), t(2, 4, "2")]
    assert assign_speakers([w(1.7, 2.1), w(1.9, 2.4)], turns) == ["1", "2"]


def test_overlaps_of_one_speaker_add_up() -> None:
    # "1" covers 0.3 s in two pieces, "2" covers 0.2 s in one
    turns = [t(0.0, 1.15, "1"), t(1.2, 1.35, "1"), t(1.0, 1.2, "2")]
    assert assign_speakers([w(1.0, 1.35)], turns) == ["1"]


def test_overlapped_speech_ties_go_to_the_turn_around_the_middle() -> None:
    turns = [t(0.0, 1.5, "2"), t(1.0, 3.0, "1")]
    # word 1.0-1.5: both cover 0.5 s; both contain the middle, so the smaller label wins
    assert assign_speakers([w(1.0, 1.5)], turns) == ["1"]
    # word 1.2-1.7 inside "1" entirely: 0.5 s against 0.3 s
    assert assign_speakers([w(1.2, 1.7)], turns) == ["1"]
    # word 0.5-1.5: "2" covers all of it
    assert assign_speakers([w(0.5, 1.5)], turns) == ["2"]


def test_word_in_a_gap_takes_the_nearest_turn_within_tolerance() -> None:
    turns = [t(0, 1, "1"), t(3, 4, "2")]
    words = [w(1.1, 1.3), w(2.6, 2.9), w(1.7, 2.2)]
    assert assign_speakers(words, turns, tolerance=0.6) == ["1", "2", None]
    assert assign_speakers(words, turns, tolerance=1.0) == ["1", "2", "1"]


def test_word_touching_a_turn_boundary_counts_as_nearest() -> None:
    assert assign_speakers([w(1.0, 1.2)], [t(0, 1, "1")], tolerance=0.0) == ["1"]


def test_zero_length_word_takes_the_turn_containing_it() -> None:
    turns = [t(0, 1, "1"), t(1, 2, "2")]
    assert assign_speakers([w(0.5, 0.5), w(1.5, 1.5)], turns) == ["1", "2"]
    # exactly on the change: both contain it, tie broken by label
    assert assign_speakers([w(1.0, 1.0)], turns) == ["1"]


def test_no_turns_or_no_words() -> None:
    assert assign_speakers([w(0, 1)], []) == [None]
    assert assign_speakers([], [t(0, 1, "1")]) == []


def test_turns_need_not_be_sorted_and_long_turns_are_found() -> None:
    turns = [t(60, 61, "3"), t(0, 60, "1"), t(61, 62, "2"), t(1, 2, "4")]
    words = [w(30, 31), w(60.2, 60.8), w(61.2, 61.5), w(1.2, 1.9)]
    # the last word lies in "1" and "4" alike (overlapped speech): the smaller label wins
    assert assign_speakers(words, turns) == ["1", "3", "2", "1"]


def _brute_force(words: list[Word], turns: list[SpeakerTurn], tol: float) -> list[str | None]:
    out: list[str | None] = []
    for word in words:
        totals: dict[str, float] = {}
        for turn in turns:
            inter = min(word.end, turn.end) - max(word.start, turn.start)
            if inter > 0:
                totals[turn.speaker] = totals.get(turn.speaker, 0.0) + inter
        if totals:
            best = max(totals.values())
            tied = list(totals.values()).count(best) > 1
            out.append("*" if tied else max(totals, key=lambda s: totals[s]))
            continue
        gaps = [(max(turn.start - word.end, word.start - turn.end), turn.speaker) for turn in turns]
        near = [g for g in gaps if g[0] <= tol]
        out.append(min(near)[1] if near else None)
    return out


def test_matches_a_brute_force_reference_on_random_data() -> None:
    rng = random.Random(7)
    for _ in range(50):
        turns = []
        for _ in range(rng.randint(0, 30)):
            a = rng.uniform(0, 60)
            turns.append(t(a, a + rng.uniform(0.05, 8), str(rng.randint(1, 4))))
        words = []
        for _ in range(40):
            a = rng.uniform(0, 65)
            words.append(w(a, a + rng.uniform(0.05, 0.8)))
        got = assign_speakers(words, turns, tolerance=0.4)
        for g, e in zip(got, _brute_force(words, turns, 0.4), strict=True):
            if e != "*":  # exact ties: any tied speaker is right
                assert g == e


def test_many_words_and_turns_are_fast() -> None:
    import time

    turns = [t(i * 2.0, i * 2.0 + 2.1, str(i % 3 + 1)) for i in range(5000)]
    words = [w(i * 0.3, i * 0.3 + 0.25) for i in range(30000)]
    started = time.perf_counter()
    labels = assign_speakers(words, turns)
    assert time.perf_counter() - started < 5.0
    assert all(label is not None for label in labels)


def test_split_by_speaker_groups_consecutive_words() -> None:
    words = [w(i, i + 0.5, f" {i}") for i in range(6)]
    groups = split_by_speaker(words, ["1", "1", "2", None, "2", "1"])
    assert [(label, [x.text for x in ws]) for label, ws in groups] == [
        ("1", [" 0", " 1"]),
        ("2", [" 2"]),
        (None, [" 3"]),
        ("2", [" 4"]),
        ("1", [" 5"]),
    ]


def test_split_by_speaker_can_absorb_unknown_words() -> None:
    words = [w(i, i + 0.5, f" {i}") for i in range(5)]
    groups = split_by_speaker(words, [None, "2", None, "2", "1"], absorb_unknown=True)
    assert [(label, len(ws)) for label, ws in groups] == [("2", 4), ("1", 1)]
    assert split_by_speaker(words[:2], [None, None], absorb_unknown=True) == [
        (None, words[:2])
    ]


def test_split_by_speaker_checks_lengths() -> None:
    with pytest.raises(ValueError, match="2 words but 1 labels"):
        split_by_speaker([w(0, 1), w(1, 2)], ["1"])
    assert split_by_speaker([], []) == []


def test_speaker_parts_keep_the_segment_id_for_the_first_part() -> None:
    words = [w(0, 1), w(1, 2), w(2, 3), w(3, 4)]
    parts = speaker_parts("TR_x-ab12-7", words, ["1", None, "2", "1"])
    assert [(p.segment_id, p.label, len(p.words)) for p in parts] == [
        ("TR_x-ab12-7", "1", 2), ("TR_x-ab12-7.1", "2", 1), ("TR_x-ab12-7.2", "1", 1)]
    assert [whole_id(p.segment_id) for p in parts] == ["TR_x-ab12-7"] * 3
    assert part_id("seg-00003", 0) == "seg-00003" and whole_id("seg-00003") == "seg-00003"
    assert speaker_parts("s", [], []) == []
