from __future__ import annotations

import pytest

from greffier.core.config import AsrSettings
from greffier.core.text import (
    edit_distance,
    language_code,
    normalize_text,
    safe_name,
    word_error_rate,
)

pytestmark = pytest.mark.unit


def test_normalisation_drops_case_and_punctuation_but_keeps_elisions() -> None:
    assert normalize_text("Hello, World!  It's") == "hello world it's"
    assert normalize_text("Aujourd’hui, l'état — c'est «nous».") == "aujourd'hui l'état c'est nous"
    assert normalize_text("well-known 'quoted'") == "well known quoted"


@pytest.mark.parametrize("name, safe", [
    ("Réunion d'équipe", "Reunion-d-equipe"), ("../../etc/passwd", "etc-passwd"),
    ("a\nb\x00c", "a-b-c"), ("notes.v2_final", "notes.v2_final"), ("...", "x"), ("日本", "x"),
])
def test_safe_names_keep_only_portable_characters(name: str, safe: str) -> None:
    assert safe_name(name, "x") == safe


def test_one_language_rule_for_settings_requests_and_attributes() -> None:
    assert [language_code(v) for v in (" FR ", "en", "Auto", "", "  ", None)] == [
        "fr", "en", None, None, None, None]
    assert AsrSettings(language=" FR ").language == "fr" == AsrSettings(language="fr").language_code
    assert AsrSettings(language="").language == "auto" and AsrSettings().language_code is None


def test_edit_distance() -> None:
    assert edit_distance("a b c".split(), "a x c d".split()) == 2
    assert edit_distance([], ["a"]) == 1


def test_corpus_wer_weights_by_reference_length() -> None:
    result = word_error_rate(["one two three four", "five"], ["one two three four", "six"])
    assert result.errors == 1 and result.reference_words == 5
    assert result.wer == pytest.approx(0.2)
    with pytest.raises(ValueError):
        word_error_rate(["a"], [])


def test_stm_references_are_read_in_time_order(tmp_path) -> None:
    from greffier.core.text import read_reference

    stm = tmp_path / "x.stm"
    stm.write_text(";; comment\nx 1 B 2.0 3.0 <o,f0,male> world\nx 1 A 0.5 1.5 Hello,\n")
    assert read_reference(stm) == "Hello, world"
    txt = tmp_path / "y.txt"
    txt.write_text(" plain text \n")
    assert read_reference(txt) == "plain text"
