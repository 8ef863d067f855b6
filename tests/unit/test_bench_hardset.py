"""The hard variants built from any data set (benchmarks.hardset.build_from)."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import read_manifest
from benchmarks.hardset import build_from
from greffier.core.audio import SAMPLE_RATE, read_audio
from greffier.evaluation.datasets import load_dataset

pytestmark = pytest.mark.unit


def speech_wav(path: Path, silence_s: float, tone_s: float, freq: float) -> None:
    """Silence, a tone standing for speech, silence again."""
    t = np.arange(int(tone_s * SAMPLE_RATE)) / SAMPLE_RATE
    gap = np.zeros(int(silence_s * SAMPLE_RATE))
    audio = np.concatenate([gap, 0.5 * np.sin(2 * np.pi * freq * t), gap])
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((audio * 32767).astype("<i2").tobytes())


def energy_bounds(audio: np.ndarray) -> tuple[float, float]:
    idx = np.flatnonzero(np.abs(audio) > 0.01)
    return idx[0] / SAMPLE_RATE, (idx[-1] + 1) / SAMPLE_RATE


def common_voice(root: Path) -> Path:
    rows = ["path\tsentence\tlocale"]
    for i, (lang, freq) in enumerate([("en", 440), ("fr", 550), ("en", 660), ("fr", 770),
                                      ("en", 880)]):
        speech_wav(root / "clips" / f"c{i}.wav", 0.5, 1.0 + 0.25 * i, freq)
        rows.append(f"c{i}.wav\tsentence {i}\t{lang}")
    (root / "test.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_every_variant_from_a_common_voice_folder(tmp_path: Path) -> None:
    items = load_dataset(common_voice(tmp_path / "cv"))
    manifest = build_from(items, tmp_path / "hard", per_variant=4, chain=3,
                          bounds=energy_bounds)
    clips = read_manifest(manifest)
    by_id = {c.id: c for c in clips}
    variants = sorted({c.variant for c in clips})
    assert variants == ["chained", "overlap", "overlap_mix", "phone", "quiet"]
    # quiet and phone: four items, taken in turn from each language
    quiet = [c for c in clips if c.variant == "quiet"]
    assert [c.id for c in quiet] == ["hard-quiet-c0", "hard-quiet-c1", "hard-quiet-c2",
                                     "hard-quiet-c3"]
    peak = float(np.max(np.abs(read_audio(by_id["hard-quiet-c0"].audio_path))))
    assert 20 * np.log10(peak) == pytest.approx(-40.0, abs=0.5)
    # chained: the English items cut to their speech (50 ms either side) one after the other
    chained = by_id["hard-chained-en"]
    assert chained.reference == "sentence 0 sentence 2 sentence 4"
    duration = read_audio(chained.audio_path).size / SAMPLE_RATE
    assert duration == pytest.approx(sum(1.0 + 0.25 * i + 0.1 for i in (0, 2, 4)), abs=0.01)
    utts = chained.utterances()
    assert len(utts) == 3 and utts[1][0] == pytest.approx(1.1 + 0.05, abs=0.01)
    # overlap: two tracks of one group, the second voice 2.5 s before the first ends (or at 0)
    a, b = by_id["hard-overlap-fr-a"], by_id["hard-overlap-fr-b"]
    assert a.group == b.group == "overlap-fr"
    assert read_audio(a.audio_path).size == read_audio(b.audio_path).size
    assert by_id["hard-overlap-fr-mix"].reference == "sentence 1 sentence 3"
    recipe = json.loads((tmp_path / "hard" / "recipe.json").read_text())
    assert recipe["chained"]["fr"] == ["c1", "c3"] and recipe["overlap"]["en"] == ["c0", "c2"]


def test_a_data_set_without_transcripts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no item with a reference"):
        build_from([], tmp_path / "hard", bounds=energy_bounds)
