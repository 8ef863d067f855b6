"""Small pure policies: timeline, language, device choice, settings."""

from __future__ import annotations

import pytest

from greffier.asr.language import LanguageTracker
from greffier.core.config import Settings
from greffier.core.errors import ConfigurationError
from greffier.core.timeline import StreamTimeline
from greffier.models import device as device_mod
from greffier.models.device import resolve_device

pytestmark = pytest.mark.unit


def test_timeline_follows_continuous_audio_and_reanchors_after_a_gap() -> None:
    tl = StreamTimeline(tolerance_s=0.5)
    for k in range(1, 101):  # 2 s of 20 ms frames arriving from meeting time 10 s
        tl.on_audio(0.02, 10.0 + 0.02 * k)
    assert tl.to_meeting(1.0) == pytest.approx(11.0)
    # muted for 30 s, then audio again
    for k in range(1, 51):
        tl.on_audio(0.02, 42.0 + 0.02 * k)
    assert tl.to_meeting(1.0) == pytest.approx(11.0)
    assert tl.to_meeting(2.5) == pytest.approx(42.5)
    assert tl.received_s == pytest.approx(3.0)


def test_timeline_stall_then_burst_does_not_drift() -> None:
    tl = StreamTimeline(tolerance_s=0.5)
    for k in range(1, 51):  # 1 s of audio on time, from meeting time 10 s
        tl.on_audio(0.02, 10.0 + 0.02 * k)
    # the process stalls 2 s: the next second of audio arrives late, in a burst...
    for k in range(1, 51):
        tl.on_audio(0.02, 13.0 + 0.0001 * k)
    # ...and the following audio is on time again
    for k in range(1, 51):
        tl.on_audio(0.02, 12.0 + 0.02 * k)
    assert tl.to_meeting(2.5) == pytest.approx(12.5, abs=0.05)
    assert tl.to_meeting(1.5) == pytest.approx(11.5, abs=0.05)
    # a mute after that is still a gap
    for k in range(1, 51):
        tl.on_audio(0.02, 30.0 + 0.02 * k)
    assert tl.to_meeting(3.5) == pytest.approx(30.5, abs=0.05)
    assert tl.to_meeting(2.5) == pytest.approx(12.5, abs=0.05)


def test_timeline_ignores_small_jitter() -> None:
    tl = StreamTimeline(tolerance_s=0.5)
    tl.on_audio(0.02, 5.02)
    tl.on_audio(0.02, 5.30)  # late by 0.26 s: jitter, not a gap
    assert tl.to_meeting(0.03) == pytest.approx(5.03)


def test_language_forced_detected_and_released() -> None:
    assert LanguageTracker("fr").language == "fr"
    assert LanguageTracker("fr", multilingual=False).language == "en"
    t = LanguageTracker(lock_after_s=3.0, recheck_after_silence_s=30)
    t.observe("fr", 0.9, 1.0)
    assert t.language is None
    t.observe("en", 0.4, 1.0)
    t.observe("fr", 0.8, 1.5)
    assert t.language == "fr"
    t.silence(10)
    assert t.language == "fr"
    t.silence(31)
    assert t.language is None
    t.force("en")
    t.silence(100)
    assert t.language == "en" and t.is_forced


def test_device_auto_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_mod, "_resolved", {})
    calls = []

    def probe() -> bool:
        calls.append(1)
        return True

    assert resolve_device("auto", "auto", library="x", cuda_available=probe).compute_type == (
        "float16"
    )
    resolve_device("auto", "auto", library="x", cuda_available=probe)
    assert len(calls) == 1
    cpu = resolve_device("auto", "auto", library="y", cuda_available=lambda: False)
    assert (cpu.device, cpu.compute_type) == ("cpu", "int8")
    assert resolve_device("cpu", "float32", library="z", cuda_available=probe).device == "cpu"
    with pytest.raises(ConfigurationError, match="no CUDA device"):
        resolve_device("cuda", "auto", library="w", cuda_available=lambda: False)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREFFIER_ASR__MODEL", "tiny.en")
    monkeypatch.setenv("GREFFIER_VAD__MIN_SILENCE_MS", "400")
    monkeypatch.setenv("LIVEKIT_URL", "wss://meet.example.org")
    s = Settings()
    assert s.asr.model == "tiny.en" and s.vad.min_silence_s == 0.4
    assert s.livekit.http_url == "https://meet.example.org"
    monkeypatch.setenv("GREFFIER_ASR__BEAM_SIZE", "0")
    with pytest.raises(ValueError):
        Settings()


def test_vad_durations_are_seconds_and_the_former_milliseconds_still_work(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GREFFIER_VAD__MIN_SILENCE_S", "0.6")
    monkeypatch.setenv("GREFFIER_VAD__SPEECH_PAD_MS", "150")
    with caplog.at_level("WARNING", logger="greffier.core.config"):
        s = Settings()
    assert (s.vad.min_silence_s, s.vad.speech_pad_s) == (0.6, 0.15)
    assert "speech_pad_ms is deprecated" in caplog.text
    assert "min_silence" not in caplog.text
