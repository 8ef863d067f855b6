from __future__ import annotations

import numpy as np
import pytest

from greffier.asr.offline import ChunkingOptions, speech_chunks
from greffier.core.audio import SAMPLE_RATE, read_audio

pytestmark = pytest.mark.unit


def test_speech_is_chunked_at_long_pauses_and_bounded(clips) -> None:
    a = read_audio(clips["ljspeech_LJ001-0001"].audio)
    b = read_audio(clips["lhotse_librispeech_2412-153948-0000"].audio)
    gap = np.zeros(2 * SAMPLE_RATE, np.float32)
    audio = np.concatenate([gap, a, gap, b, gap])
    chunks = speech_chunks(audio, ChunkingOptions(max_chunk_s=20.0))
    assert len(chunks) == 2
    (s1, e1), (s2, e2) = chunks
    assert 1.5 * SAMPLE_RATE < s1 < 2.5 * SAMPLE_RATE and e1 < s2
    assert abs(e2 - (4 + (a.size + b.size) / SAMPLE_RATE) * SAMPLE_RATE) < SAMPLE_RATE
    short = speech_chunks(audio, ChunkingOptions(max_chunk_s=5.0))
    assert all(e - s <= 5 * SAMPLE_RATE for s, e in short) and len(short) >= 4
    assert speech_chunks(np.zeros(5 * SAMPLE_RATE, np.float32), ChunkingOptions()) == []
