"""The diarization benchmark's scoring and data, against hand-computed answers: DER/JER of a
known RTTM pair with and without collar, the AMI-style folder it reads, the report it writes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.diarization import aggregate, recordings, result_name, score, speaker_references
from benchmarks.diarization_report import render_markdown
from greffier.cli import build_parser
from greffier.core.config import Settings
from greffier.diarization.metrics import der_components, read_rttm
from greffier.evaluation.command import module_arguments
from tests.unit.test_evaluation_datasets import tiny_wav

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

# Reference: A 0-4 and 7-9, B 5-8 (A and B overlap 7-8); 9 s of speech (overlap counts twice).
REFERENCE = (
    "SPEAKER meet 1 0.00 4.00 <NA> <NA> A <NA> <NA>\n"
    "SPEAKER meet 1 5.00 3.00 <NA> <NA> B <NA> <NA>\n"
    "SPEAKER meet 1 7.00 2.00 <NA> <NA> A <NA> <NA>\n"
)
# Hypothesis: s1 0.2-4.0, s2 4.5-8.5. Best mapping s1 -> A (3.8 s right), s2 -> B (3 s).
HYPOTHESIS = (
    "SPEAKER meet 1 0.20 3.80 <NA> <NA> s1 <NA> <NA>\n"
    "SPEAKER meet 1 4.50 4.00 <NA> <NA> s2 <NA> <NA>\n"
)
UEM = (0.0, 10.0)


def rttm_pair(tmp_path: Path) -> tuple[list, list]:
    (tmp_path / "ref.rttm").write_text(REFERENCE)
    (tmp_path / "hyp.rttm").write_text(HYPOTHESIS)
    return read_rttm(tmp_path / "ref.rttm"), read_rttm(tmp_path / "hyp.rttm")


def test_der_of_a_known_rttm_pair_without_collar(tmp_path: Path) -> None:
    reference, hypothesis = rttm_pair(tmp_path)
    # missed: A 0-0.2, A 7-8 (two speakers, one found), A 8.5-9 = 1.7 s; false alarm: s2
    # 4.5-5 = 0.5 s; confusion: s2 (= B) on A alone 8-8.5 = 0.5 s. DER = 2.7 / 9 = 0.3.
    c = der_components(reference, hypothesis, uem=UEM)
    assert c["missed detection"] == pytest.approx(1.7)
    assert c["false alarm"] == pytest.approx(0.5)
    assert c["confusion"] == pytest.approx(0.5)
    assert c["total"] == pytest.approx(9.0)
    row = score(reference, hypothesis, UEM, collar_s=0.0)
    assert row["der"] == pytest.approx(0.3) and row["der_no_collar"] == pytest.approx(0.3)
    # JER: A 1 - 3.8/6, B 1 - 3/4 (s2 spans 4 s); mean (0.36667 + 0.25) / 2.
    assert row["jer"] == pytest.approx((1 - 3.8 / 6 + 0.25) / 2)
    assert (row["speakers"], row["reference_speakers"]) == (2, 2)


def test_der_with_a_quarter_second_collar_each_side(tmp_path: Path) -> None:
    reference, hypothesis = rttm_pair(tmp_path)
    # 0.25 s each side of the reference boundaries 0, 4, 5, 7, 8, 9 leaves 0.25-3.75,
    # 4.25-4.75, 5.25-6.75, 7.25-7.75, 8.25-8.75 and 9.25-10 scored. Reference speech there:
    # 3.5 + 1.5 + 2 x 0.5 + 0.5 = 6.5 s. Errors: false alarm 4.5-4.75 (0.25), missed A
    # 7.25-7.75 (0.5) and 8.5-8.75 (0.25), confusion 8.25-8.5 (0.25): 1.25 / 6.5 = 5/26.
    row = score(reference, hypothesis, UEM, collar_s=0.25)
    assert row["der"] == pytest.approx(5 / 26)
    assert row["reference_speech_s"] == pytest.approx(6.5)
    assert (row["missed_s"], row["false_alarm_s"], row["confusion_s"]) == pytest.approx(
        (0.75, 0.25, 0.25)
    )
    assert row["der_no_collar"] == pytest.approx(0.3)
    # the same collar in pyannote.metrics' convention is the total width, 0.5 s
    assert der_components(reference, hypothesis, uem=UEM, collar=0.5)[
        "diarization error rate"
    ] == pytest.approx(5 / 26)


def test_der_pooled_over_recordings_weighs_by_speech() -> None:
    rows = {
        "a": {"der": 0.5, "jer": 0.2, "missed_s": 5.0, "false_alarm_s": 0.0, "confusion_s": 0.0,
              "reference_speech_s": 10.0, "der_no_collar": 0.6, "jer_no_collar": 0.3, "rtf": 0.1},
        "b": {"der": 0.0, "jer": 0.0, "missed_s": 0.0, "false_alarm_s": 0.0, "confusion_s": 0.0,
              "reference_speech_s": 90.0, "der_no_collar": 0.0, "jer_no_collar": 0.0, "rtf": 0.3},
    }
    out = aggregate(rows)
    assert out["der_mean"] == pytest.approx(0.25)
    assert out["der_pooled"] == pytest.approx(5 / 100)
    assert (out["der_no_collar_mean"], out["rtf_mean"]) == pytest.approx((0.3, 0.2))


def ami_folder(root: Path) -> Path:
    tiny_wav(root / "audio" / "ES2004a.Mix-Headset.wav")
    tiny_wav(root / "audio" / "ES2004a.Array1-01.wav")
    tiny_wav(root / "audio" / "IS1009a.wav")
    (root / "rttm").mkdir()
    (root / "rttm" / "dev.rttm").write_text(
        "SPEAKER ES2004a 1 0.50 2.00 <NA> <NA> MEE013 <NA> <NA>\n"
        "SPEAKER ES2004a 1 3.00 1.00 <NA> <NA> FEE016 <NA> <NA>\n"
        "SPEAKER IS1009a 1 1.00 4.00 <NA> <NA> FIE081 <NA> <NA>\n"
    )
    (root / "ES2004a.uem").write_text("ES2004a 1 0.00 5.00\n")
    (root / "ES2004a.stm").write_text(
        ";; AMI-style STM: file channel speaker start end [<label>] words\n"
        "ES2004a 1 MEE013 4.10 5.00 right then\n"
        "ES2004a 1 FEE016 3.00 4.00 <o,f0,female> yes\n"
        "ES2004a 1 MEE013 0.50 2.50 okay so let us start\n"
    )
    (root / "IS1009a.txt").write_text("hello there\n")
    return root


def test_an_ami_style_folder_gives_turns_uem_and_each_speakers_words(tmp_path: Path) -> None:
    folder = ami_folder(tmp_path / "my_ami")
    items = {u.id: u for u in recordings(str(folder), Settings())}
    assert set(items) == {"ES2004a", "IS1009a"}
    es, is_ = items["ES2004a"], items["IS1009a"]
    assert es.audio_path.name == "ES2004a.Mix-Headset.wav"
    assert es.uem == (0.0, 5.0) and is_.uem is None
    assert [(t.start, t.end, t.speaker) for t in es.reference_turns()] == [
        (0.5, 2.5, "MEE013"), (3.0, 4.0, "FEE016")]
    # the STM's speaker field gives cpWER its references, in time order, label dropped
    assert speaker_references(es) == {"MEE013": "okay so let us start right then",
                                      "FEE016": "yes"}
    # a plain-text transcript names no speaker: WER only
    assert is_.reference == "hello there" and speaker_references(is_) is None
    assert result_name(str(folder)) == "diarization_my_ami"
    assert result_name("shared") == "diarization"


def test_greffier_bench_diarization_passes_the_folder_and_collar_through() -> None:
    args = build_parser().parse_args(
        ["bench", "diarization", "--set", "/data/ami", "--collar", "0", "--out", "/tmp/r"])
    assert module_arguments(args, REPO) == [
        sys.executable, "-m", "benchmarks.diarization", "--set", "/data/ami",
        "--results-dir", "/tmp/r", "--collar", "0.0"]


def test_the_report_shows_each_systems_der_and_the_collar() -> None:
    per = {"der": 0.125, "jer": 0.2, "der_no_collar": 0.25, "speakers": 2,
           "reference_speakers": 3, "rtf": 0.5, "window_s_mean": 0.4, "window_s_max": 0.9}
    data = {
        "date": "2026-12-02T00:00:00Z", "run_s": 12.0, "command": "python -m x",
        "machine": {"cores": 2, "cpu": "cpu"},
        "configuration": {"set": "/data/ami", "recordings": [{"id": "m1"}],
                          "collar_s_each_side": 0.25, "pyannote_metrics_collar": 0.5,
                          "oracle_speakers": False, "torch_threads": 1},
        "models": {"diarization": {"device": "cpu"}, "whisper": None},
        "versions": {"pyannote.metrics": "4.2.0"},
        "der": {"live": {"label": "live", "der_mean": 0.125, "der_pooled": 0.125,
                         "jer_mean": 0.2, "der_no_collar_mean": 0.25, "rtf_mean": 0.5,
                         "per_recording": {"m1": per}}},
        "cpwer": None,
    }
    md = render_markdown(data, "x_der.png")
    assert "collar 0.25 s each side" in md
    assert "| live | 0.125 | **0.125** | 0.125 | 0.200 | 0.250 | 2 (ref 3) | 0.50 |" in md
    assert "![DER per recording](x_der.png)" in md
