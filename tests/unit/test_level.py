"""The slow gain before the VAD: quiet speech raised, loud speech, silence and noise not."""

from __future__ import annotations

import numpy as np
import pytest

from greffier.asr.level import LevelNormalizer, LevelOptions
from greffier.core.audio import SAMPLE_RATE, read_audio

pytestmark = pytest.mark.unit


def peak_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.max(np.abs(x)) + 1e-12))


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def run(x: np.ndarray, chunk: int = 320, **kw: float) -> tuple[np.ndarray, LevelNormalizer]:
    norm = LevelNormalizer(LevelOptions(**kw))
    out = np.concatenate([norm.process(x[i : i + chunk]) for i in range(0, x.size, chunk)])
    return out, norm


def speech(clips) -> np.ndarray:  # type: ignore[no-untyped-def]
    return read_audio(clips["ljspeech_LJ001-0001"].audio)


def scaled(x: np.ndarray, peak_dbfs: float) -> np.ndarray:
    return (x * (10 ** (peak_dbfs / 20) / np.max(np.abs(x)))).astype(np.float32)


def test_quiet_speech_is_raised_to_a_normal_level(clips) -> None:
    quiet = scaled(speech(clips), -40)
    out, norm = run(quiet)
    assert out.size == quiet.size
    assert 19 <= norm.gain_db <= 40
    # after the first half second the level is that of normal speech (target -26 dBFS RMS)
    later = out[SAMPLE_RATE // 2 :]
    assert -18 <= peak_db(later) <= -0.5
    assert np.max(np.abs(out)) < 1.0


def test_normal_and_loud_speech_pass_unchanged(clips) -> None:
    for peak in (-3.0, -1.0):
        x = scaled(speech(clips), peak)
        out, norm = run(x)
        assert norm.gain_db < 3.0
        assert abs(rms_db(out) - rms_db(x)) < 3.0


def test_silence_and_steady_noise_are_not_raised() -> None:
    rng = np.random.default_rng(1)
    zeros = np.zeros(5 * SAMPLE_RATE, np.float32)
    out, _ = run(zeros)
    assert not out.any()
    for level in (0.0005, 0.003, 0.03):  # -66, -50, -30 dBFS RMS hiss
        hiss = (level * rng.standard_normal(10 * SAMPLE_RATE)).astype(np.float32)
        out, norm = run(hiss)
        assert rms_db(out[5 * SAMPLE_RATE :]) <= max(-54.0, rms_db(hiss) + 1.0), level
    t = np.arange(6 * SAMPLE_RATE) / SAMPLE_RATE
    hum = (0.001 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    out, _ = run(hum)
    assert rms_db(out) <= -54.0


def test_the_gain_holds_through_pauses_between_sentences(clips) -> None:
    x = scaled(speech(clips), -40)
    gap = np.zeros(2 * SAMPLE_RATE, np.float32)
    norm = LevelNormalizer()
    norm.process(x)
    before = norm.gain_db
    norm.process(gap)
    assert abs(norm.gain_db - before) < 3.0  # no pumping: the next words start at the same gain


def test_quiet_speech_over_noise_keeps_the_noise_below_the_ceiling(clips) -> None:
    rng = np.random.default_rng(2)
    x = scaled(speech(clips), -40)
    noise = (0.0003 * rng.standard_normal(x.size)).astype(np.float32)  # about -70 dBFS
    lead = (0.0003 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
    out, norm = run(np.concatenate([lead, x + noise]))
    assert norm.gain_db <= -55.0 - (-70.5) + 1.0  # the floor is not lifted above -55 dBFS


def test_the_result_does_not_depend_much_on_the_chunk_size(clips) -> None:
    x = scaled(speech(clips), -40)
    a, _ = run(x, chunk=160)
    b, _ = run(x, chunk=1024)
    assert abs(rms_db(a) - rms_db(b)) < 1.0


def test_disabled_is_the_identity(clips) -> None:
    x = scaled(speech(clips), -40)
    out, _ = run(x, enabled=False)
    assert np.array_equal(out, x)


def test_the_first_syllable_of_a_normal_stream_is_not_boosted(clips) -> None:
    """Measured: boosting the quiet onset of "Printing" (before the louder syllables set the
    level) made Whisper hear "Punting"."""
    x = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), speech(clips)])
    norm = LevelNormalizer()
    gains = []
    for i in range(0, x.size, 320):
        norm.process(x[i : i + 320])
        gains.append(norm.gain_db)
    assert max(gains) < 3.0


def test_quiet_speech_reaches_its_gain_within_a_second(clips) -> None:
    x = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), scaled(speech(clips), -40)])
    norm = LevelNormalizer()
    norm.process(x[: int(1.6 * SAMPLE_RATE)])
    assert norm.gain_db >= 25.0
