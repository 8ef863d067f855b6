"""A stream that fell behind the live audio (an overloaded machine) catches up in large steps,
asks for no interim while behind, and still finalises every utterance; decoding yields the CPU
to the threads that move audio and captions."""

from __future__ import annotations

import asyncio
import os
import threading

import numpy as np
import pytest

from greffier.asr.engine import InferenceEngine
from greffier.asr.streaming import StreamingOptions, StreamingTranscriber
from greffier.core import priority
from greffier.core.audio import SAMPLE_RATE
from greffier.core.types import TranscriptEventType
from tests.unit.test_streaming_sequence import CountingDecoder, collect_events, two_utterances

pytestmark = pytest.mark.unit


def test_a_stream_behind_catches_up_in_steps_without_interims(clips) -> None:
    audio = two_utterances(clips)
    engine = InferenceEngine(CountingDecoder()).start()
    steps: list[int] = []

    async def go() -> tuple[list, StreamingTranscriber]:
        stream = StreamingTranscriber(engine, StreamingOptions())
        listen = stream._listen

        def counted(chunk: np.ndarray) -> np.ndarray:
            steps.append(chunk.size)
            return listen(chunk)

        stream._listen = counted  # type: ignore[method-assign]
        events, task = collect_events(stream)
        # all of it arrives while the stream is busy elsewhere: 20 ms frames, never awaited
        for i in range(0, audio.size, 320):
            stream.push_audio(audio[i : i + 320])
        await stream.aclose()
        await task
        return events, stream

    events, stream = asyncio.run(go())
    engine.close()
    frames = -(-audio.size // 320)
    assert sum(steps) == audio.size, "every sample is heard once"
    assert len(steps) <= audio.size / SAMPLE_RATE + 2 < frames / 10
    assert max(steps) <= SAMPLE_RATE + 320
    assert stream.skipped_interims > 0
    # at most the speculative finals' results, shown while a pause is not yet an endpoint
    assert len([e for e in events if e.type is TranscriptEventType.INTERIM]) <= 2
    finals = [e for e in events if e.type is TranscriptEventType.FINAL and e.text]
    assert len(finals) == 2, "each utterance still gets its final"
    assert stream.dropped_audio_s == 0


def test_threads_started_inside_the_block_decode_at_a_lower_priority() -> None:
    def niceness(tid: int) -> int:
        return os.getpriority(os.PRIO_PROCESS, tid)

    release = threading.Event()
    ids: dict[str, int] = {}

    def park(name: str) -> None:
        ids[name] = threading.get_native_id()
        release.wait(10)

    outside = threading.Thread(target=park, args=("outside",))
    outside.start()
    with priority.new_threads_lowered():
        inside = threading.Thread(target=park, args=("inside",))
        inside.start()
        while "inside" not in ids or "outside" not in ids:
            release.wait(0.01)
    try:
        base = niceness(threading.get_native_id())
        assert niceness(ids["inside"]) == base + priority.DECODE_NICENESS
        assert niceness(ids["outside"]) == base
    finally:
        release.set()
        inside.join()
        outside.join()
