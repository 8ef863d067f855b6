from __future__ import annotations

import numpy as np
import pytest

from greffier.core.audio import (
    SAMPLE_RATE,
    StreamResampler,
    float32_to_pcm16,
    normalize_chunk,
    pcm16_to_float32,
    read_audio_with_info,
    resample,
    to_mono,
)
from greffier.core.errors import AudioFormatError

pytestmark = pytest.mark.unit


def tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spectrum)])


def test_pcm16_round_trip() -> None:
    x = np.array([-1.0, -0.5, 0.0, 0.5, 0.999], dtype=np.float32)
    back = pcm16_to_float32(float32_to_pcm16(x))
    assert np.allclose(back, x, atol=1 / 32768)
    assert pcm16_to_float32(float32_to_pcm16(np.array([2.0, -2.0]))).tolist() == [
        pytest.approx(32767 / 32768), -1.0
    ]


def test_to_mono_averages_channels_and_rejects_ragged_input() -> None:
    stereo = np.array([1.0, 0.0, 0.5, 0.5], dtype=np.float32)
    assert to_mono(stereo, 2).tolist() == [0.5, 0.5]
    with pytest.raises(AudioFormatError):
        to_mono(np.zeros(3, np.float32), 2)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_resampling_keeps_the_pitch_and_the_duration(rate: int) -> None:
    x = tone(440.0, rate, 2.0)
    y = resample(x, rate, SAMPLE_RATE)
    assert abs(y.size - 2 * SAMPLE_RATE) <= 1
    assert dominant_frequency(y, SAMPLE_RATE) == pytest.approx(440.0, abs=2.0)
    assert np.sqrt(np.mean(y[2000:-2000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_downsampling_removes_what_cannot_be_represented() -> None:
    # 9 kHz is above the 8 kHz Nyquist limit of 16 kHz audio: it must vanish, not fold to 7 kHz.
    y = resample(tone(9_000.0, 44_100), 44_100, SAMPLE_RATE)
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) < 0.01


def test_streamed_resampling_equals_whole_signal_resampling() -> None:
    x = tone(300.0, 44_100, 1.5) + tone(2_500.0, 44_100, 1.5) * 0.2
    whole = resample(x, 44_100, SAMPLE_RATE)
    rs = StreamResampler(44_100, SAMPLE_RATE)
    rng = np.random.default_rng(0)
    parts, i = [], 0
    while i < x.size:
        n = int(rng.integers(1, 2000))
        parts.append(rs.process(x[i : i + n]))
        i += n
    parts.append(rs.flush())
    streamed = np.concatenate(parts)
    assert streamed.size == whole.size
    assert np.allclose(streamed, whole, atol=1e-5)


def test_normalize_chunk_handles_stereo_int16_at_8k() -> None:
    left = float32_to_pcm16(tone(200.0, 8_000))
    stereo = np.stack([left, left], axis=1).reshape(-1)
    out = normalize_chunk(stereo, 8_000, 2)
    assert out.dtype == np.float32 and abs(out.size - SAMPLE_RATE) <= 1
    with pytest.raises(AudioFormatError):
        normalize_chunk(np.zeros(10, np.int32), 16_000)


def test_read_audio_reports_the_source_format(clips, tmp_path) -> None:
    audio, info = read_audio_with_info(clips["jfk"].audio)
    assert info.sample_rate == 16_000 and info.num_channels == 1
    assert info.duration == pytest.approx(11.0, abs=0.05)
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioFormatError):
        read_audio_with_info(broken)
    with pytest.raises(AudioFormatError):
        read_audio_with_info(tmp_path / "missing.wav")
