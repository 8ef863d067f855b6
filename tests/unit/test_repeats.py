"""Repeated phrases in finals: fuzzy, truncated, across the seam; real speech kept."""

from __future__ import annotations

import pytest

from greffier.asr.agreement import word_key
from greffier.asr.repeats import drop_repeats, drop_seam_repeat, find_repeat
from greffier.core.types import Word

pytestmark = pytest.mark.unit


def words(text: str, t0: float = 0.0) -> tuple[Word, ...]:
    return tuple(Word(t0 + 0.3 * i, t0 + 0.3 * i + 0.25, " " + w)
                 for i, w in enumerate(text.split()))


def text(ws) -> str:  # type: ignore[no-untyped-def]
    return "".join(w.text for w in ws).strip()


# The French final of issue 8: the sentence said again, cut short mid-word.
JEAN_CARLOS = ("Jean-Carlos a été transporté à l'hôpital peu après le démarrage. "
               "Jean-Carlos a été transporté à l'hôpital peu après le démarr")


def test_a_truncated_second_copy_is_dropped() -> None:
    kept, removed = drop_repeats(words(JEAN_CARLOS))
    assert removed == 1
    assert text(kept) == "Jean-Carlos a été transporté à l'hôpital peu après le démarrage."


def test_a_copy_that_differs_by_a_word_is_dropped() -> None:
    first = "the committee approved the budget for the new school building on Monday evening"
    second = "the committee approved the budget for the new school building on Monday night"
    kept, removed = drop_repeats(words(f"{first}. {second}. And then we left."))
    assert removed == 1
    assert text(kept) == f"{first}. And then we left."


def test_a_copy_with_a_word_split_differently_is_dropped() -> None:
    a = "Jean-Carlos a été transporté à l'hôpital peu après le démarrage de la course"
    b = "Jean Carlos a été transporté à l'hôpital peu après le démarrage de la course"
    kept, removed = drop_repeats(words(f"{a}. {b}."))
    assert removed == 1 and text(kept) == f"{a}."


def test_an_exact_copy_is_dropped_and_the_rest_kept() -> None:
    ws = words("Printing in the only sense with which we are at present concerned. "
               "Printing in the only sense with which we are at present concerned. differs "
               "from most")
    kept, _ = drop_repeats(ws)
    assert text(kept) == ("Printing in the only sense with which we are at present concerned. "
                          "differs from most")


@pytest.mark.parametrize("speech", [
    "no no no I said no",
    "I think I think we should go",
    "he went to the shop on Monday, he went to the bank on Monday",
    "the cat sat on the mat and the dog sat on the rug",
    "one two three four five six seven eight nine ten",
    "very very very good",
])
def test_what_people_do_say_is_kept(speech: str) -> None:
    kept, removed = drop_repeats(words(speech))
    assert removed == 0 and text(kept) == speech


def test_a_final_repeating_the_end_of_the_previous_one_loses_the_copy() -> None:
    previous = words("Had he married a more amiable woman, he might have been made still "
                     "more respectable than he was.")
    current = words("still more respectable than he was. He was not an ill-disposed young man",
                    t0=10)
    assert text(drop_seam_repeat(previous, current)) == "He was not an ill-disposed young man"


def test_the_seam_keeps_a_new_sentence_that_starts_like_the_last_word() -> None:
    previous = words("we will meet on Monday.")
    current = words("Monday is a holiday though", t0=5)
    assert drop_seam_repeat(previous, current) == current


def test_find_repeat_reports_positions() -> None:
    keys = [word_key(w) for w in words("a b c d e f a b c d e f g")]
    rep = find_repeat(keys)
    assert rep is not None and (rep.first, rep.second, rep.end) == (0, 6, 12)
