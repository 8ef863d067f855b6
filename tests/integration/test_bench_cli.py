"""``greffier bench asr`` as a command on a LibriSpeech-style folder built from two shared
English clips (LibriSpeech's upper-case, unpunctuated references), with the shipped tiny.en.

Measured on this machine (2 CPU cores, otherwise idle): about 10 s, model load included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from greffier.evaluation.normalize import normalize_english
from greffier.models.registry import SHIPPED_MODELS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLIPS = {"2830-3980-0001": "jfk", "2830-3980-0002": "ps_librivox_sense_sensibility_01-0880"}


def test_bench_asr_on_a_librispeech_folder(tmp_path: Path, clips) -> None:
    chapter = tmp_path / "LibriSpeech" / "test-clean" / "2830" / "3980"
    chapter.mkdir(parents=True)
    lines = []
    for uid, clip_id in CLIPS.items():
        clip = clips[clip_id]
        shutil.copy(clip.audio, chapter / f"{uid}.wav")
        words = "".join(c if c.isalnum() or c in " '" else " " for c in clip.text).upper()
        lines.append(f"{uid} {' '.join(words.split())}")
    (chapter / "2830-3980.trans.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "greffier", "bench", "asr", "--model", "tiny.en", "--device", "cpu",
         "--data", str(tmp_path / "LibriSpeech"), "--out", str(out), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((out / "asr.json").read_text())

    assert result["model"]["name"] == "tiny.en"
    assert result["model"]["sha256"] == SHIPPED_MODELS["tiny.en"].sha256
    assert result["device"]["device"] == "cpu"
    assert result["libraries"]["jiwer"] and result["libraries"]["faster-whisper"]
    assert result["machine"]["cores"] >= 1
    assert result["configuration"]["items"] == 2

    summary = result["summary"]["all"]
    assert summary["clips"] == 2
    # Whisper writes "And so, my fellow Americans," against "AND SO MY FELLOW AMERICANS":
    # as written nearly every word differs; normalised, tiny.en gets nearly all of them.
    assert summary["wer"] <= 0.15
    assert summary["wer_raw"] >= 0.5
    assert summary["cer"] < summary["cer_raw"]
    assert 0 < summary["rtf"] < 5

    by_id = {c["id"]: c for c in result["clips"]}
    assert set(by_id) == set(CLIPS)
    for uid, clip in by_id.items():
        assert clip["language"] == "en" and clip["hypothesis"]
        reference_words = normalize_english(clip["reference"]).split()
        assert clip["words"]["reference_length"] == len(reference_words)
        assert clip["wer"] == pytest.approx(clip["words"]["errors"] / len(reference_words))
        assert clip["rtf"] > 0 and clip["cpu_s_per_audio_s"] > 0
        assert clip["duration_s"] == pytest.approx(clips[CLIPS[uid]].duration, abs=0.1)

    assert (out / "asr_wer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "asr.md").read_text()
    assert "| language | clips | audio | WER | WER raw |" in table
    assert all(f"| {uid} |" in table for uid in CLIPS)
