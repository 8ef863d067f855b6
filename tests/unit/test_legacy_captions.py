"""Append-only pieces for La Suite Meet's caption view, on scripted update sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greffier.core.text import normalize_text
from greffier.core.types import CaptionUpdate, Speaker, Word
from greffier.subtitles.legacy import AppendOnlyCaptions

pytestmark = pytest.mark.unit

ALICE = Speaker("alice", "Alice")


def words(text: str, start: float = 0.0, step: float = 0.4) -> tuple[Word, ...]:
    """Whisper-like words, one every ``step`` seconds from ``start``."""
    return tuple(
        Word(start + i * step, start + i * step + step * 0.8, " " + w)
        for i, w in enumerate(text.split())
    )


def upd(
    seg: str,
    text: str,
    final: bool = False,
    start: float = 0.0,
    *,
    ws: tuple[Word, ...] | None = None,
    speaker: Speaker = ALICE,
) -> CaptionUpdate:
    ws = words(text, start) if ws is None else ws
    return CaptionUpdate(
        segment_id=seg,
        speaker=speaker,
        track_sid="TR_a",
        language="en",
        start=ws[0].start if ws else start,
        end=ws[-1].end if ws else start + 1.0,
        text=text,
        final=final,
        words=ws,
    )


def meet_view(pieces: list[CaptionUpdate | None]) -> str:
    """What Meet's caption view shows: the first text of each id, joined."""
    seen: dict[str, str] = {}
    for p in pieces:
        if p is not None and p.segment_id not in seen:
            seen[p.segment_id] = p.text.strip()
    return " ".join(t for t in seen.values() if t)


def run(updates: list[CaptionUpdate]) -> tuple[AppendOnlyCaptions, list[CaptionUpdate | None]]:
    policy = AppendOnlyCaptions()
    return policy, [policy.push(u) for u in updates]


def test_confirmed_words_go_out_as_they_are_confirmed_then_the_rest_of_the_final() -> None:
    policy, out = run(
        [
            upd("s-0", "Hello there"),
            upd("s-0", "Hello there my friend"),  # "Hello there" agreed twice
            upd("s-0", "Hello there my friend how"),  # "my friend" agreed
            upd("s-0", "Hello there my friend, how are you?", final=True),
        ]
    )
    assert out[0] is None
    assert [p.text if p else None for p in out[1:]] == ["Hello there", "my friend", "how are you?"]
    pieces = [p for p in out if p is not None]
    assert all(p.final for p in pieces)
    assert len({p.segment_id for p in pieces}) == len(pieces)
    assert pieces[1].words[0].text == " my" and pieces[1].start == pytest.approx(0.8)
    assert normalize_text(meet_view(out)) == normalize_text("Hello there my friend, how are you?")
    assert policy.rewritten == 0


def test_a_revised_tail_is_never_shown() -> None:
    _, out = run(
        [
            upd("s-0", "I scream"),
            upd("s-0", "Ice cream is"),  # nothing agreed: the tail was revised
            upd("s-0", "Ice cream is good"),
            upd("s-0", "Ice cream is good for you.", final=True),
        ]
    )
    assert out[:2] == [None, None]
    assert "scream" not in meet_view(out).split()
    assert meet_view(out) == "Ice cream is good for you."


def test_a_final_equal_to_the_confirmed_words_adds_nothing() -> None:
    _, out = run(
        [
            upd("s-0", "one two three"),
            upd("s-0", "one two three"),
            upd("s-0", "one two three", final=True),
        ]
    )
    assert [p.text if p else None for p in out] == [None, "one two three", None]


def test_a_final_that_rewords_shown_words_adds_only_what_follows_them() -> None:
    shown = (Word(0.0, 0.3, " If"), Word(0.3, 0.5, " the"), Word(0.5, 1.1, " RIDU"))
    final = (
        Word(0.0, 0.3, " If"),
        Word(0.3, 0.5, " the"),
        Word(0.5, 0.8, " ridge"),
        Word(0.8, 1.1, " you"),
        Word(1.3, 1.6, " said."),
    )
    policy, out = run(
        [
            upd("s-0", "If the RIDU", ws=shown),
            upd("s-0", "If the RIDU", ws=shown),
            upd("s-0", "If the ridge you said.", final=True, ws=final),
        ]
    )
    assert out[-1] is not None and out[-1].text == "said."
    assert meet_view(out) == "If the RIDU said."  # shown words stay; nothing said twice
    assert policy.rewritten == 2


def test_words_the_final_dropped_stay_and_do_not_shadow_the_next_segment() -> None:
    _, out = run(
        [
            upd("s-0", "thank you so much"),
            upd("s-0", "thank you so much"),
            upd("s-0", "thank you so", final=True),
            upd("s-1", "much better now", start=4.0),
            upd("s-1", "much better now", start=4.0),
            upd("s-1", "much better now", final=True, start=4.0),
        ]
    )
    assert meet_view(out) == "thank you so much much better now"


def test_an_empty_final_retracts_nothing_and_publishes_nothing() -> None:
    _, out = run(
        [
            upd("s-0", "hello there"),
            upd("s-0", "hello there friend"),
            upd("s-0", "", final=True, ws=()),
            upd("s-1", "next one", start=5.0),
            upd("s-1", "next one", final=True, start=5.0),
        ]
    )
    assert out[2] is None
    assert meet_view(out) == "hello there next one"


def test_an_empty_final_without_interims_publishes_nothing() -> None:
    _, out = run([upd("s-0", "", final=True, ws=())])
    assert out == [None]


def test_a_cut_segment_does_not_repeat_the_words_shown_after_the_cut() -> None:
    all_words = words("one two three. four five six seven")
    _, out = run(
        [
            upd("s-0", "one two three. four five", ws=all_words[:5]),
            upd("s-0", "one two three. four five", ws=all_words[:5]),  # five words shown
            upd("s-0", "one two three.", final=True, ws=all_words[:3]),  # cut after "three."
            upd("s-1", "four five six", ws=all_words[3:6]),
            upd("s-1", "four five six seven", ws=all_words[3:7]),
            upd("s-1", "four five six seven.", final=True, ws=all_words[3:7]),
        ]
    )
    assert [p.text if p else None for p in out] == [
        None,
        "one two three. four five",
        None,
        None,
        "six",
        "seven",
    ]
    assert normalize_text(meet_view(out)) == normalize_text("one two three. four five six seven")


def test_a_split_final_publishes_each_part_once() -> None:
    ws = words("are you there yes I am here")
    bob = Speaker("room-3", "Room 3", "2")
    _, out = run(
        [
            upd("s-4", "are you there yes", ws=ws[:4]),
            upd("s-4", "are you there yes I", ws=ws[:5]),  # four words shown
            upd("s-4.0", "are you there", final=True, ws=ws[:3]),
            upd("s-4.1", "yes I am here", final=True, ws=ws[3:], speaker=bob),
        ]
    )
    assert [p.text if p else None for p in out] == [None, "are you there yes", None, "I am here"]
    assert out[3] is not None and out[3].speaker == bob
    assert meet_view(out) == "are you there yes I am here"


def test_an_explicit_confirmed_count_is_used() -> None:
    policy = AppendOnlyCaptions()
    assert policy.push(upd("s-0", "bonjour à tous"), confirmed=1) is not None
    piece = policy.push(upd("s-0", "bonjour à tous les"), confirmed=3)
    assert piece is not None and piece.text == "à tous"
    assert policy.push(upd("s-0", "bonjour à tous les amis"), confirmed=3) is None


def test_a_late_interim_of_a_finished_segment_is_ignored() -> None:
    _, out = run(
        [upd("s-0", "yes"), upd("s-0", "yes", final=True), upd("s-0", "yes"), upd("s-0", "yes")]
    )
    assert meet_view(out) == "yes" and out[2:] == [None, None]


def test_a_final_without_word_timings_is_aligned_by_its_text() -> None:
    _, out = run(
        [
            upd("s-0", "good morning all"),
            upd("s-0", "good morning all"),
            upd("s-0", "good morning all of you", final=True, ws=()),
        ]
    )
    assert out[-1] is not None and out[-1].text == "of you"


def test_ids_stay_unique_over_a_long_meeting() -> None:
    policy = AppendOnlyCaptions()
    ids = []
    for k in range(300):
        for text, final in (("a b", False), ("a b c", False), ("a b c d", True)):
            piece = policy.push(upd(f"TR_a-ep-{k}", text, final, start=10.0 * k))
            if piece is not None:
                ids.append(piece.segment_id)
    assert len(ids) == len(set(ids)) == 600


VOCAB = ["the", "a", "meeting", "budget", "is", "approved", "next", "week", "yes", "no", "we"]


@settings(max_examples=200, deadline=None)
@given(
    final=st.lists(st.sampled_from(VOCAB), min_size=1, max_size=14),
    steps=st.lists(
        st.tuples(st.integers(0, 14), st.lists(st.sampled_from(VOCAB), max_size=3)), max_size=8
    ),
)
def test_when_the_final_keeps_its_confirmed_words_meet_shows_exactly_the_final(
    final: list[str], steps: list[tuple[int, list[str]]]
) -> None:
    """Interims: a growing confirmed prefix of the final plus a tentative tail that may be
    wrong (the engine's confirmed count given)."""
    ws = words(" ".join(final))
    updates: list[tuple[CaptionUpdate, int | None]] = []
    confirmed = 0
    for grow, tail in steps:
        confirmed = min(len(ws), max(confirmed, grow))
        tail_ws = words(" ".join(tail), start=confirmed * 0.4)
        shown = ws[:confirmed] + tail_ws
        if shown:
            updates.append((upd("s-0", "".join(w.text for w in shown), ws=shown), confirmed))
    updates.append((upd("s-0", " ".join(final), final=True, ws=ws), None))
    policy = AppendOnlyCaptions()
    out = [policy.push(u, confirmed=n) for u, n in updates]
    pieces = [p for p in out if p is not None]
    assert meet_view(out).split() == final
    assert all(p.final and p.text for p in pieces)
    assert len({p.segment_id for p in pieces}) == len(pieces)
    assert policy.rewritten == 0


def test_three_interims_must_agree_when_asked() -> None:
    policy = AppendOnlyCaptions(agreement=3)
    out = [
        policy.push(upd("s-0", "we will")),
        policy.push(upd("s-0", "we will meet")),
        policy.push(upd("s-0", "we will meet on")),
        policy.push(upd("s-0", "we will meet on friday", final=True)),
    ]
    assert [p.text if p else None for p in out] == [None, None, "we will", "meet on friday"]
    with pytest.raises(ValueError):
        AppendOnlyCaptions(agreement=1)
