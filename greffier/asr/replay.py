"""Replay harness: feed a recording through the exact streaming code and measure it.

Two clocks:

* ``simulated`` (fast, deterministic): audio is pushed as fast as it is processed, interims are
  awaited inline, and each event is stamped with the audio time pushed so far. Latencies are
  computation-unaware (what an infinitely fast machine would give); WER and flicker are exact.
* ``realtime``: audio is pushed at its own pace and events are stamped with the wall clock,
  so latencies include the model's compute time and any queueing in the engine.

For every word of every final it records when it first appeared on screen, unchanged from then
on, and when it became final; flicker counts displayed words that a later update rewrote.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from greffier.asr.agreement import word_key
from greffier.asr.streaming import StreamingTranscriber
from greffier.core.audio import SAMPLE_RATE, FloatArray
from greffier.core.types import TranscriptEvent, TranscriptEventType


@dataclass(frozen=True, slots=True)
class TimedEvent:
    """An event and the clock time (seconds since the replay began) it was emitted at."""

    time: float
    event: TranscriptEvent


@dataclass(frozen=True, slots=True)
class WordRecord:
    """The life of one final word."""

    text: str
    end: float
    """When the word ended in the audio."""
    stable_at: float
    """When it was first displayed as it finally is, and stayed so."""
    final_at: float


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay produced."""

    events: tuple[TimedEvent, ...]
    audio_s: float

    @property
    def finals(self) -> list[TimedEvent]:
        return [e for e in self.events if e.event.type is TranscriptEventType.FINAL]

    @property
    def interims(self) -> list[TimedEvent]:
        return [e for e in self.events if e.event.type is TranscriptEventType.INTERIM]

    def final_text(self) -> str:
        """The transcript: every final's text, in order."""
        return " ".join(e.event.text for e in self.finals if e.event.text)

    def segments(self) -> dict[int, list[TimedEvent]]:
        """Interims and final of each segment, by segment index."""
        out: dict[int, list[TimedEvent]] = {}
        for e in self.events:
            if e.event.type in (TranscriptEventType.INTERIM, TranscriptEventType.FINAL):
                out.setdefault(e.event.segment_index, []).append(e)
        return out

    def word_records(self) -> list[WordRecord]:
        """Timing of every final word."""
        records: list[WordRecord] = []
        for updates in self.segments().values():
            final = next((u for u in updates if u.event.type is TranscriptEventType.FINAL), None)
            if final is None:
                continue
            final_keys = [word_key(w) for w in final.event.words]
            for i, word in enumerate(final.event.words):
                stable_at = final.time
                # Walk back over the updates while position i already showed this word.
                for u in reversed(updates):
                    keys = [word_key(w) for w in u.event.words]
                    if len(keys) > i and keys[: i + 1] == final_keys[: i + 1]:
                        stable_at = u.time
                    else:
                        break
                records.append(WordRecord(word.text, word.end, stable_at, final.time))
        return records

    def flicker(self) -> float:
        """Rewritten displayed words per final word: each update that changes or removes a
        word shown by the previous update of the same segment counts those words."""
        rewrites = 0
        final_words = 0
        for updates in self.segments().values():
            previous: list[str] = []
            for u in updates:
                keys = [word_key(w) for w in u.event.words] or u.event.text.lower().split()
                common = 0
                while common < min(len(previous), len(keys)) and previous[common] == keys[common]:
                    common += 1
                rewrites += len(previous) - common
                previous = keys
                if u.event.type is TranscriptEventType.FINAL:
                    final_words += len(keys)
        return rewrites / final_words if final_words else 0.0

    def first_interim_latencies(self, speech_starts: Sequence[float] | None = None) -> list[float]:
        """Per segment: first interim (or final) time minus the segment's speech start."""
        out = []
        for updates in self.segments().values():
            first = updates[0]
            start = first.event.start
            if speech_starts:
                start = min(speech_starts, key=lambda s: abs(s - first.event.start))
            out.append(first.time - start)
        return out

    def final_latencies(self) -> list[float]:
        """Per final: its emission time minus the end of its last word."""
        return [f.time - f.event.end for f in self.finals if f.event.text]


async def replay(
    audio: FloatArray,
    make_stream: Callable[[], StreamingTranscriber],
    *,
    realtime: bool = False,
    chunk_s: float = 0.02,
    tail_silence_s: float = 1.0,
) -> ReplayResult:
    """Push ``audio`` (16 kHz mono) through a new stream and collect its events."""
    stream = make_stream()
    if not realtime and not stream.options.synchronous:
        raise ValueError("a simulated replay needs StreamingOptions(synchronous=True)")
    audio = np.concatenate(
        [np.asarray(audio, np.float32), np.zeros(int(tail_silence_s * SAMPLE_RATE), np.float32)]
    )
    step = max(1, int(chunk_s * SAMPLE_RATE))
    events: list[TimedEvent] = []
    pushed = 0
    t0 = time.monotonic()

    def now() -> float:
        return time.monotonic() - t0 if realtime else pushed / SAMPLE_RATE

    async def collect() -> None:
        async for ev in stream:
            events.append(TimedEvent(now(), ev))

    collector = asyncio.create_task(collect())
    for i in range(0, audio.size, step):
        chunk = audio[i : i + step]
        if realtime:
            delay = t0 + (i + chunk.size) / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        stream.push_audio(chunk)
        pushed += chunk.size
        if not realtime:
            await stream.drain()
            await asyncio.sleep(0)
    await stream.aclose()
    await collector
    return ReplayResult(tuple(events), audio.size / SAMPLE_RATE)
