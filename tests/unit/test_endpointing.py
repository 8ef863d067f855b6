"""Endpointing: the pure policy on scripted probabilities, then Silero on real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from greffier.asr.endpointing import Endpointer, EndpointEvent, windows
from greffier.asr.vad import WINDOW, WINDOW_S, SileroVad
from greffier.core.audio import SAMPLE_RATE, read_audio
from greffier.core.config import VadSettings

pytestmark = pytest.mark.unit


def run(probs: list[float], **kw: int) -> list[tuple[EndpointEvent, int]]:
    ep = Endpointer(threshold=0.5, **kw)
    return [(e.event, e.window) for p in probs for e in ep.update(p)]


def test_speech_needs_min_speech_windows() -> None:
    assert run([0.9, 0.9, 0.1, 0.9, 0.1], min_speech_windows=3) == []
    events = run([0.1, 0.9, 0.9, 0.9], min_speech_windows=3)
    assert events == [(EndpointEvent.SPEECH_STARTED, 1)]


def test_pause_becomes_an_endpoint_only_after_min_silence() -> None:
    probs = [0.9] * 3 + [0.1] * 2 + [0.9] + [0.1] * 4
    events = run(probs, min_speech_windows=2, min_silence_windows=4)
    assert events == [
        (EndpointEvent.SPEECH_STARTED, 0),
        (EndpointEvent.PAUSE_STARTED, 3),
        (EndpointEvent.SPEECH_RESUMED, 5),
        (EndpointEvent.PAUSE_STARTED, 6),
        (EndpointEvent.SPEECH_ENDED, 6),
    ]


def test_hysteresis_keeps_speech_between_thresholds() -> None:
    # 0.4 is below the on threshold but above the off threshold (0.35): still speech.
    events = run([0.9, 0.9] + [0.4] * 10, min_speech_windows=2, min_silence_windows=2)
    assert events == [(EndpointEvent.SPEECH_STARTED, 0)]


def test_force_end_closes_the_utterance_once() -> None:
    ep = Endpointer(min_speech_windows=1)
    ep.update(0.9)
    ep.update(0.9)
    end = ep.force_end()
    assert end is not None and end.event is EndpointEvent.SPEECH_ENDED and end.window == 2
    assert ep.force_end() is None and not ep.in_speech


def utterances(audio: np.ndarray, chunk: int = 320) -> list[tuple[float, float]]:
    vad = SileroVad.shared().stream()
    ep = Endpointer(threshold=0.5, min_speech_windows=8, min_silence_windows=16)
    spans: list[tuple[float, float]] = []
    start = None
    for i in range(0, audio.size, chunk):
        for p in vad.process(audio[i : i + chunk]):
            for e in ep.update(float(p)):
                if e.event is EndpointEvent.SPEECH_STARTED:
                    start = e.window * WINDOW_S
                elif e.event is EndpointEvent.SPEECH_ENDED:
                    assert start is not None
                    spans.append((start, e.window * WINDOW_S))
    return spans


def test_real_utterances_separated_by_silence_are_found(clips) -> None:
    a = read_audio(clips["ljspeech_LJ001-0002"].audio)  # "in being comparatively modern."
    b = read_audio(clips["ljspeech_LJ001-0008"].audio)  # "has never been surpassed."
    gap = np.zeros(2 * SAMPLE_RATE, np.float32)
    audio = np.concatenate([gap, a, gap, b, gap])
    spans = utterances(audio)
    assert len(spans) == 2
    a_start, a_end = 2.0, 2.0 + a.size / SAMPLE_RATE
    b_start = a_end + 2.0
    b_end = b_start + b.size / SAMPLE_RATE
    (s1, e1), (s2, e2) = spans
    assert a_start - 0.1 <= s1 <= a_start + 0.5 and a_end - 0.6 <= e1 <= a_end + 0.1
    assert b_start - 0.1 <= s2 <= b_start + 0.5 and b_end - 0.6 <= e2 <= b_end + 0.1


def test_silence_and_steady_noise_give_no_utterance() -> None:
    rng = np.random.default_rng(1)
    silence = np.zeros(10 * SAMPLE_RATE, np.float32)
    noise = (0.05 * rng.standard_normal(10 * SAMPLE_RATE)).astype(np.float32)
    hum = (0.2 * np.sin(2 * np.pi * 50 * np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE)).astype(
        np.float32
    )
    assert utterances(silence) == []
    assert utterances(noise) == []
    assert utterances(hum) == []


def test_streaming_vad_is_independent_of_chunking(clips) -> None:
    audio = read_audio(clips["jfk"].audio)[: 4 * SAMPLE_RATE]
    whole = SileroVad.shared().stream().process(audio)
    s = SileroVad.shared().stream()
    parts = [s.process(audio[i : i + 777]) for i in range(0, audio.size, 777)]
    assert np.allclose(np.concatenate(parts), whole, atol=1e-5)
    assert whole.size == audio.size // WINDOW


def test_durations_in_seconds_become_windows_once() -> None:
    assert windows(0.45) == 14 and windows(0.25) == 8 and windows(0.0) == 1
    ep = Endpointer.from_settings(VadSettings(threshold=0.6, min_speech_s=0.1, min_silence_s=0.2))
    assert (ep.on, ep.min_speech, ep.min_silence) == (0.6, 3, 6)
    default = Endpointer()
    assert default.min_silence == windows(VadSettings().min_silence_s)
