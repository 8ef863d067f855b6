"""Transcription of whole recordings with the streaming decoder's short windows.

Silero VAD finds the speech; speech is grouped into chunks of at most ``max_chunk_s`` that end
at pauses; chunks of similar length are decoded together (``decode_batch``), each with only its
own audio plus a little padding in the encoder window rather than Whisper's 30 s. Each chunk
gets ``context_s`` of the audio before it as acoustic context (its words are dropped). One
language per recording: the given one, or detected once on the first speech.

The VAD is described by :class:`~greffier.core.config.VadSettings` as for live streams; a
recording takes the configured threshold and padding (:meth:`ChunkingOptions.from_settings`)
but cuts at shorter pauses than a live endpoint (:data:`RECORDING_VAD`): here a pause only
marks where a chunk may end, and chunks join again across pauses under ``merge_gap_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from greffier.asr.endpointing import Endpointer, EndpointEvent
from greffier.asr.segmenting import words_after
from greffier.asr.vad import WINDOW, WINDOW_S, SileroVad
from greffier.asr.whisper import DecodeOptions, WhisperDecoder
from greffier.core.audio import SAMPLE_RATE, FloatArray
from greffier.core.config import VadSettings
from greffier.core.types import Hypothesis, join_words

RECORDING_VAD = VadSettings(min_speech_s=0.125, min_silence_s=0.3)
"""A recording's speech regions: shorter speech and pauses than a live endpoint."""


@dataclass(frozen=True, slots=True)
class ChunkingOptions:
    max_chunk_s: float = 20.0
    vad: VadSettings = RECORDING_VAD
    """Speech regions (``speech_pad_s`` kept either side of each)."""
    merge_gap_s: float = 0.8
    """Speech separated by a shorter pause shares a chunk; a longer pause starts a new one
    (one decode over a long silence may skip the speech before it)."""
    context_s: float = 1.0
    batch_size: int = 4

    @classmethod
    def from_settings(cls, vad: VadSettings, **overrides: Any) -> ChunkingOptions:
        """Chunking with the configured VAD threshold and padding (:data:`RECORDING_VAD`'s
        durations)."""
        update = {"threshold": vad.threshold, "speech_pad_s": vad.speech_pad_s}
        return cls(vad=RECORDING_VAD.model_copy(update=update), **overrides)


def speech_chunks(
    audio: FloatArray, options: ChunkingOptions, vad: SileroVad | None = None
) -> list[tuple[int, int]]:
    """Sample ranges of speech, cut at pauses, each at most ``max_chunk_s`` long."""
    stream = (vad or SileroVad.shared()).stream()
    ep = Endpointer.from_settings(options.vad)
    regions: list[tuple[int, int]] = []
    start: int | None = None
    # In blocks of ``reset_after_s``: the VAD state is reset after a block without speech
    # (VadSettings.reset_after_s), as on live streams.
    block = max(1, round(options.vad.reset_after_s / WINDOW_S)) * WINDOW
    if options.vad.reset_after_s <= 0:
        block = max(audio.size, WINDOW)
    for offset in range(0, audio.size, block):
        heard = False
        for p in stream.process(audio[offset : offset + block]):
            for e in ep.update(float(p)):
                if e.event is EndpointEvent.SPEECH_STARTED:
                    start = e.window * WINDOW
                elif e.event is EndpointEvent.SPEECH_ENDED and start is not None:
                    regions.append((start, e.window * WINDOW))
                    start = None
            heard = heard or ep.in_speech
        if not heard and options.vad.reset_after_s > 0:
            stream.reset_state()
    end = ep.force_end()
    if end is not None and start is not None:
        regions.append((start, min(audio.size, end.window * WINDOW)))
    pad = int(options.vad.speech_pad_s * SAMPLE_RATE)
    limit = int(options.max_chunk_s * SAMPLE_RATE)
    chunks: list[tuple[int, int]] = []
    gap = int(options.merge_gap_s * SAMPLE_RATE)
    previous_end = -gap - 1
    for first, last in regions:
        lo, hi = max(0, first - pad), min(audio.size, last + pad)
        joinable = first - previous_end < gap
        previous_end = last
        if chunks and joinable and hi - chunks[-1][0] <= limit:
            chunks[-1] = (chunks[-1][0], hi)  # the pause joins the previous chunk
            continue
        while hi - lo > limit:  # one long stretch of speech: cut it blindly
            chunks.append((lo, lo + limit))
            lo += limit
        chunks.append((lo, hi))
    return chunks


def transcribe_recording(
    decoder: WhisperDecoder,
    audio: FloatArray,
    *,
    language: str | None,
    beam_size: int = 5,
    options: ChunkingOptions | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[Hypothesis]:
    """One hypothesis per chunk, words on the recording's timeline (blocking)."""
    o = options or ChunkingOptions()
    chunks = speech_chunks(audio, o)
    if not chunks:
        return []
    if language is None and decoder.multilingual:
        first = audio[chunks[0][0] : chunks[0][0] + 30 * SAMPLE_RATE]
        language, _ = decoder.detect_language(first)
    ctx = int(o.context_s * SAMPLE_RATE)
    order = sorted(range(len(chunks)), key=lambda i: chunks[i][1] - chunks[i][0])
    results: dict[int, Hypothesis] = {}
    done_s = 0.0
    for b in range(0, len(order), max(1, o.batch_size)):
        group = order[b : b + max(1, o.batch_size)]
        requests = []
        for i in group:
            s, e = chunks[i]
            requests.append(
                (audio[max(0, s - ctx) : e], DecodeOptions(language=language, beam_size=beam_size))
            )
        for i, hyp in zip(group, decoder.decode_batch(requests), strict=True):
            s, e = chunks[i]
            offset = max(0, s - ctx) / SAMPLE_RATE
            # Words before the chunk belong to the previous one; the first word's alignment
            # often starts early, so the line is drawn where the previous chunk ended.
            previous_end = chunks[i - 1][1] if i else 0
            boundary = max(previous_end, s - ctx // 2) / SAMPLE_RATE
            words = words_after(hyp.words, offset, boundary)
            results[i] = replace(hyp, words=words, text=join_words(words))
            done_s += (e - s) / SAMPLE_RATE
        if progress is not None:
            progress(done_s)
    return [results[i] for i in range(len(chunks)) if results[i].words]
