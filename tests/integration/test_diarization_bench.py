"""``greffier bench diarization`` on an AMI-style folder given by path: a two-voice recording
built from two shared clips (RTTM from the clips' speech bounds, an STM transcript naming each
line's speaker), scored for DER with the default 0.25 s collar and for cpWER of the minutes path.

Measured on this machine (2 CPU cores, shared): about 40 s, model loads included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import speech_bounds
from greffier.core.audio import SAMPLE_RATE, float32_to_pcm16, read_audio

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VOICES = (("JFK", "jfk"), ("READER", "ps_librivox_sense_sensibility_01-0870"))
GAP_S = 0.6


def ami_folder(root: Path, clips) -> Path:
    """``root/audio/duo01.Mix-Headset.wav``, ``root/duo01.rttm``, ``root/duo01.stm``."""
    pieces, rttm, stm, pos = [], [], [], 0.0
    for speaker, clip_id in VOICES:
        audio = read_audio(clips[clip_id].audio)
        if pieces:
            pieces.append(np.zeros(int(GAP_S * SAMPLE_RATE), np.float32))
            pos += GAP_S
        duration = audio.size / SAMPLE_RATE
        a, b = speech_bounds(audio)  # first and last speech (Silero VAD)
        rttm.append(f"SPEAKER duo01 1 {pos + a:.3f} {b - a:.3f} <NA> <NA> {speaker} <NA> <NA>")
        stm.append(f"duo01 1 {speaker} {pos + a:.3f} {pos + b:.3f} {clips[clip_id].text}")
        pieces.append(audio)
        pos += duration
    (root / "audio").mkdir(parents=True)
    with wave.open(str(root / "audio" / "duo01.Mix-Headset.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(float32_to_pcm16(np.concatenate(pieces)).tobytes())
    (root / "duo01.rttm").write_text("\n".join(rttm) + "\n")
    (root / "duo01.stm").write_text("\n".join(stm) + "\n")
    return root


def test_bench_diarization_on_an_ami_style_folder(tmp_path: Path, clips) -> None:
    folder = ami_folder(tmp_path / "duo", clips)
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "greffier", "bench", "diarization", "--model", "base",
         "--device", "cpu", "--set", str(folder), "--out", str(out), "--",
         "--systems", "end_of_meeting,live", "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((out / "diarization_duo.json").read_text())

    assert result["configuration"]["collar_s_each_side"] == 0.25
    assert result["configuration"]["pyannote_metrics_collar"] == 0.5
    assert [r["id"] for r in result["configuration"]["recordings"]] == ["duo01"]
    assert result["versions"]["pyannote.metrics"] and result["machine"]["cores"] >= 1
    assert result["models"]["whisper"]["name"] == "base"
    for system in ("end_of_meeting", "live"):
        row = result["der"][system]["per_recording"]["duo01"]
        # two clearly different voices with a pause between them: both found, told apart
        # (the reference, from each clip's first to last speech, counts pauses as speech: it
        # is the missed speech that makes most of the DER)
        assert row["speakers"] == 2, (system, row)
        assert row["confusion_s"] <= 1.0, (system, row)
        assert row["der"] <= 0.25, (system, row)
        assert row["der"] <= row["der_no_collar"]
    minutes = result["cpwer"]["per_recording"]["duo01"]
    assert minutes["hypothesis_speakers"] == 2 and minutes["reference_speakers"] == 2
    assert minutes["wer"] <= 0.15
    # every word went to the right voice: attribution costs (almost) nothing
    assert minutes["cpwer"] <= minutes["wer"] + 0.03
    md = (out / "diarization_duo.md").read_text()
    assert "duo01" in md and "collar 0.25 s" in md
    assert (out / "diarization_duo_der.png").stat().st_size > 1000
