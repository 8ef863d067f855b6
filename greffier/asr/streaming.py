"""The streaming transcriber: push audio, flush, close; iterate typed events.

Per stream: Silero VAD (on a shared worker thread) delimits utterances; while someone speaks,
the growing utterance buffer is re-decoded every ``interim_interval_s`` of audio by the shared
:class:`~greffier.asr.engine.InferenceEngine`; LocalAgreement confirms the stable prefix, and
the interim caption is that prefix plus the latest tentative tail. A final is produced:

* at a VAD endpoint: the decode of the whole utterance is started speculatively as soon as the
  speaker pauses, so it is usually ready when the pause becomes an endpoint;
* once the segment is ``trim_after_s`` long, at a confirmed sentence end; by default the
  confirmed words are the final (no extra decode; ``cut_decode`` decodes the stretch once
  more), and the buffer is trimmed there;
* at ``max_segment_s``, at the last confirmed word.

Where a segment is cut, which audio a decode hears and what is removed at a seam are pure
rules (:mod:`~greffier.asr.segmenting`, :func:`~greffier.asr.agreement.strip_seam`); the
state of the utterance being transcribed is one :class:`_Segment`.

Audio goes through a slow gain (:mod:`~greffier.asr.level`) before the VAD; decodes hear
their whole buffer at the gain reached so far (the first words of a quiet speaker too), so
quiet microphones are heard like loud ones. Hallucination guards run on every hypothesis. A
final never takes away confirmed words unless they are shown to be a hallucination: a failed
final decode is retried and, failing that, the confirmed words are the final
(:mod:`~greffier.asr.recovery`); a phrase written twice is kept once, within a final and
across the seam with the previous one (:mod:`~greffier.asr.repeats`). By default no text
prompt is given to Whisper (``use_prompt`` gives it the previous finals). Events carry times
on the stream's own timeline (seconds of audio pushed); :meth:`StreamingTranscriber.stats`
counts retracted segments, repeated phrases removed, retries and fallbacks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import numpy as np

from greffier.asr.agreement import LocalAgreement, strip_seam, word_key
from greffier.asr.endpointing import Endpointer, EndpointEvent
from greffier.asr.engine import InferenceEngine, RequestKind, Superseded
from greffier.asr.guards import GuardOptions, GuardVerdict, HallucinationGuard
from greffier.asr.language import LanguageTracker
from greffier.asr.level import LevelNormalizer, LevelOptions
from greffier.asr.recovery import Verdict, better, judge, retry_plan
from greffier.asr.repeats import drop_repeats, drop_seam_repeat
from greffier.asr.segmenting import MIN_CUT_S, context_start, cut_point, words_after
from greffier.asr.vad import WINDOW, WINDOW_S, SileroVad, VadStream
from greffier.asr.whisper import DecodeOptions
from greffier.core import metrics
from greffier.core.audio import SAMPLE_RATE, FloatArray
from greffier.core.config import AsrSettings, VadSettings
from greffier.core.log import get_logger
from greffier.core.types import Hypothesis, TranscriptEvent, TranscriptEventType, Word, join_words

logger = get_logger("asr.streaming")

_VAD_EXECUTOR = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="greffier-vad")
_PROMPT_CHARS = 200
_MAX_INGEST_S = 1.0
"""Most queued audio processed in one step when a stream is behind."""
_BEHIND_S = 1.0
"""Queued audio beyond which a stream is behind: it asks for no interim until it caught up."""
_stream_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class StreamingOptions:
    """Tunables of one stream; :meth:`from_settings` builds them from :class:`Settings`."""

    language: str | None = None
    """Forced language, or None to detect."""
    interim_interval_s: float = 0.8
    first_interim_s: float = 0.5
    """Speech heard before a segment's first interim decode."""
    max_segment_s: float = 16.0
    trim_after_s: float = 4.0
    agreement: int = 2
    beam_size: int = 1
    final_beam_size: int = 1
    encoder_pad_s: float = 3.0
    use_prompt: bool = False
    speculative_final: bool = True
    interim_tail_only: bool = False
    """Interims decode only the audio after the confirmed words (cheaper, measured less
    accurate: an early mistake, once confirmed, is never decoded again)."""
    cut_decode: bool = False
    """A long segment cut at a confirmed sentence end gets its final from one more decode (as
    at an endpoint) rather than from the confirmed words."""
    final_tail_only: bool = False
    """Finals keep the confirmed words and decode only what follows them (cheaper under load)."""
    cut_on_tentative: bool = True
    """A confirmed sentence end may be cut at once when the latest hypothesis goes on after it
    with a word that is not lower case (not waiting for that word to be confirmed too)."""
    stall_cut_s: float = 2.0
    """A segment whose latest hypotheses (as many as ``agreement``, at least two) each stop
    this long before the audio they were decoded from (0: never) is cut after its last word:
    Whisper sometimes stops after a sentence and leaves out the speech that follows (a new
    voice read on without a pause), and would again on every longer decode; the next segment
    starts there, without acoustic context."""
    tentative_cut_after_s: float = AsrSettings.model_fields["tentative_cut_after_s"].default
    """From this segment length on (0: never), a sentence end is cut at as soon as the latest
    hypothesis goes on after it with a word not in lower case, confirmed or not (the interim
    decode that wrote it heard the whole segment, as an endpoint's final decode would)."""
    clause_cut_after_s: float = 6.0
    """From this segment length on (0: never), with no sentence end to cut at, a confirmed
    clause end (",", ";", ":") followed by a confirmed word is cut at instead."""
    final_tail_after_s: float = 0.0
    """From this segment length on (0: never), finals decode only what follows the confirmed
    words, as with ``final_tail_only``: a long sentence's final then costs a short decode."""
    vad: VadSettings = field(default_factory=VadSettings)
    """Endpointing (threshold, shortest speech, the pause that ends an utterance, padding)."""
    lead_pad_s: float = 1.0
    """Audio kept before the detected start of speech (VAD onsets lag the first phoneme)."""
    context_s: float = 2.0
    """Audio before the segment given to Whisper as acoustic context; its words are dropped."""
    max_queued_audio_s: float = 600.0
    """Audio waiting to be processed beyond this is dropped, oldest first, with a warning
    (38 MB per stream at the bound). A stream waits for each final before it goes on, so on
    an overloaded machine its audio queues here: ten minutes ride out a long overload with
    every word late rather than lost (the minutes stay whole; the live captions lag)."""
    synchronous: bool = False
    """Await every interim inline (deterministic; for replays on a simulated clock)."""
    guard: GuardOptions = field(default_factory=GuardOptions)
    level: LevelOptions = field(default_factory=LevelOptions)
    """Slow gain before the VAD and the decoder (quiet microphones)."""
    retry_finals: bool = True
    """Decode a failed final again (no context, then beam 5 with temperature fallback) and,
    failing that, keep the confirmed words (:mod:`greffier.asr.recovery`)."""

    @classmethod
    def from_settings(
        cls, asr: AsrSettings, vad: VadSettings, **overrides: object
    ) -> StreamingOptions:
        opts = cls(
            language=asr.language_code,
            interim_interval_s=asr.interim_interval_s,
            max_segment_s=asr.max_segment_s,
            trim_after_s=min(asr.trim_after_s, asr.max_segment_s),
            context_s=asr.context_s,
            use_prompt=asr.use_prompt,
            cut_decode=asr.cut_decode,
            cut_on_tentative=asr.cut_on_tentative,
            tentative_cut_after_s=asr.tentative_cut_after_s,
            clause_cut_after_s=asr.clause_cut_after_s,
            agreement=asr.agreement,
            beam_size=asr.beam_size,
            final_beam_size=asr.final_beam_size,
            encoder_pad_s=asr.encoder_pad_s,
            vad=vad,
            level=LevelOptions(enabled=asr.normalize_level),
        )
        return replace(opts, **overrides)  # type: ignore[arg-type]


class _Flush:
    pass


class _Close:
    pass


_FLUSH = _Flush()
_CLOSE = _Close()


@dataclass
class _Speculation:
    end: int
    task: asyncio.Task[tuple[Hypothesis, GuardVerdict]]


@dataclass(eq=False)
class _Segment:
    """The utterance being transcribed, from its first sample to its final."""

    start: int
    """First sample of its audio."""
    agreement: LocalAgreement
    last_interim_request: int
    """Stream sample at which the last interim decode was asked for."""
    revision: int = 0
    interims_emitted: int = 0
    last_emitted_text: str = ""
    tentative: tuple[Word, ...] = ()
    """The latest hypothesis after the confirmed words."""
    speculation: _Speculation | None = None
    interim_task: asyncio.Task[None] | None = None
    stalls: int = 0
    """Successive hypotheses whose words stopped ``stall_cut_s`` before their audio did."""
    language: str = ""
    """Language of the latest interim (the confirmed words are in it)."""

    def cancel_interim(self) -> None:
        if self.interim_task is not None and not self.interim_task.done():
            self.interim_task.cancel()
        self.interim_task = None


class StreamingTranscriber:
    """Live transcription of one audio stream (see the module docstring).

    Usage::

        stream = StreamingTranscriber(engine, options)
        stream.push_audio(samples)      # float32 mono 16 kHz, any chunk size
        stream.flush()                  # finalise the current utterance now
        await stream.aclose()           # flush and end; iteration stops after the last event
        async for event in stream: ...
    """

    def __init__(
        self,
        engine: InferenceEngine,
        options: StreamingOptions | None = None,
        *,
        vad: SileroVad | None = None,
        stream_id: str | None = None,
    ) -> None:
        self.options = o = options or StreamingOptions()
        self.engine = engine
        self.stream_id = stream_id or f"s{next(_stream_ids)}"
        self._vad: VadStream = (vad or SileroVad.shared()).stream()
        self._endpointer = Endpointer.from_settings(o.vad)
        self._guard = HallucinationGuard(o.guard)
        self._level = LevelNormalizer(o.level)
        self._gain = 1.0  # the level's gain after the last chunk, for decodes
        self.language_tracker = LanguageTracker(o.language, multilingual=engine.multilingual)
        """The language decodes use: forced, or detected and re-checked by the finals."""
        self._pad = int(o.vad.speech_pad_s * SAMPLE_RATE)
        self._lead = int(o.lead_pad_s * SAMPLE_RATE)
        self._context = int(o.context_s * SAMPLE_RATE)
        self._floor = 0  # audio before this sample belongs to finalised segments
        # Context never reaches back past a pause that ended an utterance: Whisper, given the
        # end of a sentence and a silence before the new speech, often stops after that
        # sentence and returns nothing of the new words.
        self._context_from = 0
        self._last_final_words: tuple[Word, ...] = ()
        # True while the current segment follows the last final without a pause (a cut): its
        # decodes hear the end of that final, which Whisper may write again.
        self._seam_open = False
        # audio kept from stream sample ``_buf_start`` on
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0
        self._samples_in = 0
        # input side
        self._input: deque[FloatArray | _Flush | _Close] = deque()
        self._queued_samples = 0
        self._input_ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self.dropped_audio_s = 0.0
        self.skipped_interims = 0
        # counters (see :meth:`stats`)
        self.retracted_segments = 0
        """Segments whose interims were shown and whose final came back empty."""
        self.repeated_phrases = 0
        """Repeated phrases removed from finals (within one, or across the seam)."""
        self.final_retries = 0
        """Finals decoded again because the first decode failed or lost confirmed words."""
        self.confirmed_fallbacks = 0
        """Finals made of the confirmed words after every retry failed."""
        # the utterance being transcribed, and the index its final will have
        self._seg: _Segment | None = None
        self._seg_index = 0
        self._silence_since: int | None = 0
        self._vad_quiet_windows = 0
        self._vad_reset_windows = (
            round(o.vad.reset_after_s / WINDOW_S) if o.vad.reset_after_s > 0 else 0
        )
        self._vad_reset_due = False
        self._dropping = False
        self._speculation_due: int | None = None
        """Sample up to which a speculative final is to be decoded, once it has arrived."""
        self._prompt = ""
        # output side
        self._events: asyncio.Queue[TranscriptEvent | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name=f"greffier-stream-{self.stream_id}")

    # -- input ---------------------------------------------------------------------------

    def push_audio(self, samples: FloatArray) -> None:
        """Queue float32 mono 16 kHz samples (non-blocking)."""
        if self._closing:
            raise RuntimeError("push_audio() after aclose()")
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        if chunk.size == 0:
            return
        self._input.append(chunk)
        self._queued_samples += chunk.size
        limit = self.options.max_queued_audio_s * SAMPLE_RATE
        dropping = False
        while self._queued_samples > limit:
            oldest = next((c for c in self._input if isinstance(c, np.ndarray)), None)
            if oldest is None:
                break
            self._input.remove(oldest)
            self._queued_samples -= oldest.size
            self.dropped_audio_s += oldest.size / SAMPLE_RATE
            metrics.dropped_audio(oldest.size / SAMPLE_RATE)
            dropping = True
        if dropping and not self._dropping:
            # once per episode: a line per 10 ms frame would itself stall the event loop
            logger.warning(
                "stream %s: input backlog over %.0f s, dropping the oldest audio "
                "(%.1f s dropped so far)",
                self.stream_id,
                self.options.max_queued_audio_s,
                self.dropped_audio_s,
            )
        self._dropping = dropping
        self._idle.clear()
        self._input_ready.set()

    def flush(self) -> None:
        """Finalise the current utterance as soon as the queued audio is processed."""
        self._input.append(_FLUSH)
        self._idle.clear()
        self._input_ready.set()

    async def aclose(self) -> None:
        """Flush, process everything queued, and end the event stream."""
        if not self._closing:
            self._closing = True
            self._input.append(_CLOSE)
            self._idle.clear()
            self._input_ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)

    async def drain(self) -> None:
        """Wait until everything pushed so far has been processed (for replays)."""
        await self._idle.wait()

    def set_language(self, language: str | None) -> None:
        """Force a language for the coming decodes, or None to detect it."""
        self.language_tracker.force(language)

    # -- output --------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[TranscriptEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[TranscriptEvent]:
        while True:
            event = await self._events.get()
            if event is None:
                if self._task.done() and not self._task.cancelled() and self._task.exception():
                    raise self._task.exception()  # type: ignore[misc]
                return
            yield event

    def _emit(self, event: TranscriptEvent) -> None:
        self._events.put_nowait(event)

    def stats(self) -> dict[str, float]:
        """Counters of this stream: what benchmarks and metrics report."""
        return {
            "retracted_segments": self.retracted_segments,
            "repeated_phrases": self.repeated_phrases,
            "final_retries": self.final_retries,
            "confirmed_fallbacks": self.confirmed_fallbacks,
            "language_changes": self.language_tracker.changes,
            "dropped_audio_s": self.dropped_audio_s,
            "skipped_interims": self.skipped_interims,
        }

    # -- processing ----------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._input:
                    self._idle.set()
                    self._input_ready.clear()
                    await self._input_ready.wait()
                    continue
                item = self._input.popleft()
                if isinstance(item, _Close):
                    await self._end_segment(self._samples_in, reason="close")
                    break
                if isinstance(item, _Flush):
                    await self._end_segment(self._samples_in, reason="flush")
                    continue
                item = self._take_backlog(item)
                self._queued_samples -= item.size
                probs = await loop.run_in_executor(_VAD_EXECUTOR, self._listen, item)
                await self._ingest(item, probs)
        finally:
            if self._seg is not None:
                self._seg.cancel_interim()
            self.engine.forget(self.stream_id)
            self._idle.set()
            self._events.put_nowait(None)

    def _take_backlog(self, first: FloatArray) -> FloatArray:
        """``first`` joined with the audio queued right behind it, up to
        ``_MAX_INGEST_S``: a stream that fell behind (a busy machine) catches up in a few
        large steps instead of one VAD hand-off and event-loop turn per 10 ms frame."""
        if not self._input or not isinstance(self._input[0], np.ndarray):
            return first
        parts, size = [first], first.size
        limit = int(_MAX_INGEST_S * SAMPLE_RATE)
        while self._input and isinstance(self._input[0], np.ndarray) and size < limit:
            nxt = self._input.popleft()
            assert isinstance(nxt, np.ndarray)
            parts.append(nxt)
            size += nxt.size
        return np.concatenate(parts)

    async def _ingest(self, chunk: FloatArray, probs: FloatArray) -> None:
        self._buf = np.concatenate([self._buf, chunk]) if self._buf.size else chunk
        first_window = self._endpointer.window_index + 1
        self._samples_in += chunk.size
        for k, prob in enumerate(probs):
            window = first_window + k
            for ep in self._endpointer.update(float(prob)):
                if ep.event is EndpointEvent.SPEECH_STARTED:
                    self._start_segment(ep.window * WINDOW)
                elif ep.event is EndpointEvent.PAUSE_STARTED:
                    # The speculative final hears the same audio as the endpoint's final
                    # would (up to the pause plus the speech pad), so it can be reused.
                    self._speculation_due = ep.window * WINDOW + self._pad
                elif ep.event is EndpointEvent.SPEECH_RESUMED:
                    self._speculation_due = None
                    if self._seg is not None and self._seg.speculation is not None:
                        # Not a final after all: withdrawn (queued, it would go before every
                        # interim, and under load before other streams' finals); the next
                        # interim shows the words.
                        self._seg.speculation.task.cancel()
                        self._seg.speculation = None
                elif ep.event is EndpointEvent.SPEECH_ENDED:
                    end = min(ep.window * WINDOW + self._pad, (window + 1) * WINDOW)
                    self._speculation_due = None
                    await self._end_segment(end, reason="endpoint")
            self._vad_quiet_windows = (
                0 if self._endpointer.in_speech else self._vad_quiet_windows + 1
            )
            if self._vad_reset_windows and self._vad_quiet_windows >= self._vad_reset_windows:
                self._vad_quiet_windows = 0
                self._vad_reset_due = True  # before the next chunk (VadSettings.reset_after_s)
            due = self._speculation_due
            if due is not None and (window + 1) * WINDOW >= due:
                self._speculation_due = None
                self._speculate(due)
        if self._seg is not None:
            await self._while_speaking(self._seg)
        else:
            self._trim_idle_buffer()

    def _listen(self, chunk: FloatArray) -> FloatArray:
        """Run the VAD on a level-normalised chunk (on the VAD thread); its probabilities."""
        levelled = self._level.process(chunk)
        self._gain = self._level.gain
        if self._vad_reset_due:
            self._vad_reset_due = False
            self._vad.reset_state()
        return self._vad.process(levelled)

    def _audio(self, start: int, end: int) -> FloatArray:
        """Audio of [start, end) for a decode, at the level's current gain throughout (the
        buffer holds the audio as received)."""
        a, b = max(0, start - self._buf_start), max(0, end - self._buf_start)
        return self._level.apply(self._buf[a:b], self._gain)

    def _trim_idle_buffer(self) -> None:
        keep = (
            self._context
            + self._lead
            + int(self.options.vad.min_speech_s * SAMPLE_RATE)
            + 2 * WINDOW
        )
        excess = self._buf.size - keep
        if excess > 0:
            self._buf = self._buf[excess:]
            self._buf_start += excess
        if self._silence_since is not None:
            silent_s = (self._samples_in - self._silence_since) / SAMPLE_RATE
            self.language_tracker.silence(silent_s)

    def _drop_before(self, sample: int) -> None:
        """Forget audio no decode will need: before ``sample`` minus the context."""
        keep_from = sample - self._context
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start = keep_from

    def _decode_options(
        self, beam: int, language: str | None, temperatures: tuple[float, ...] = (0.0,)
    ) -> DecodeOptions:
        return DecodeOptions(
            language=language,
            prompt=self._prompt if self.options.use_prompt else "",
            beam_size=beam,
            word_timestamps=True,
            encoder_pad_s=self.options.encoder_pad_s,
            temperatures=temperatures,
        )

    async def _decode(
        self,
        kind: RequestKind,
        start: int,
        end: int,
        beam: int,
        seam: tuple[Word, ...] = (),
        *,
        with_context: bool = True,
        temperatures: tuple[float, ...] = (0.0,),
    ) -> tuple[Hypothesis, GuardVerdict]:
        """Decode [start, end) with up to ``context_s`` of audio before it.

        Words of the context are dropped (by time, then any of the ``seam`` words repeated at
        the boundary); words come back on the stream timeline. The hallucination guard judges
        the whole decode first (a credit line half in the context is still a credit line),
        then what is kept. A decode made without a language votes for the one it detected.
        """
        ctx = self._context_start(start) if with_context else start
        speech_s = (end - start) / SAMPLE_RATE
        if kind is RequestKind.FINAL:
            language = self.language_tracker.for_final(speech_s)
        else:
            language = self.language_tracker.language
        while True:
            hyp = await self.engine.decode(
                self.stream_id,
                kind,
                self._audio(ctx, end),
                self._decode_options(beam, language, temperatures),
            )
            whole = self._guard.check(hyp)
            if language is None and not whole.rejected and hyp.language:
                self.language_tracker.observe(hyp.language, hyp.language_probability, speech_s)
            if whole.rejected:
                return hyp, whole
            words = words_after(hyp.words, ctx / SAMPLE_RATE, start / SAMPLE_RATE)
            if words or not hyp.words or ctx >= start or kind is not RequestKind.FINAL:
                break
            # Every word fell in the context (Whisper stopped there): decode without it.
            ctx = start
        if ctx < start and words and seam:
            words = tuple(strip_seam(seam, words))
        hyp = replace(hyp, words=words, text=join_words(words))
        return hyp, self._guard.check(hyp)

    def _context_start(self, start: int) -> int:
        return context_start(
            start, buffer_start=self._buf_start, context=self._context, pause_end=self._context_from
        )

    def _start_segment(self, speech_start: int) -> None:
        start = max(self._floor, self._buf_start, speech_start - self._lead)
        # The first interim waits for first_interim_s of speech: less is rarely a word.
        first = int((self.options.interim_interval_s - self.options.first_interim_s) * SAMPLE_RATE)
        self._seg = _Segment(
            start=start,
            agreement=LocalAgreement(self.options.agreement),
            last_interim_request=max(start, speech_start - max(0, first)),
        )
        self._silence_since = None
        self._emit(
            TranscriptEvent(
                TranscriptEventType.SPEECH_STARTED,
                self._seg_index,
                start / SAMPLE_RATE,
                start / SAMPLE_RATE,
            )
        )

    def _speculate(self, end: int) -> None:
        seg = self._seg
        if not self.options.speculative_final or seg is None:
            return
        task = asyncio.create_task(self._final_decode(seg, end))
        seg.speculation = _Speculation(end, task)
        revision = seg.revision

        def show(task: asyncio.Task[tuple[Hypothesis, GuardVerdict]]) -> None:
            # The newest hypothesis while the pause is not yet an endpoint: shown as an interim
            # (unless a newer interim came first), and reused for the final if speech does not
            # resume.
            if task.cancelled() or task.exception() is not None:
                return
            if seg is self._seg and seg.revision == revision:
                hyp, verdict = task.result()
                self._show_interim(seg, hyp, verdict, end)

        task.add_done_callback(show)

    async def _while_speaking(self, seg: _Segment) -> None:
        o = self.options
        if seg.speculation is not None or self._speculation_due is not None:
            # Paused: the speculative final is the next interim, and the segment's final if
            # the pause becomes an endpoint (no cut, which would throw that decode away).
            return
        seg_len = (self._samples_in - seg.start) / SAMPLE_RATE
        if await self._cut_long_segment(seg, seg_len):
            return
        interval = o.interim_interval_s * self.engine.interim_spacing()
        due = self._samples_in - seg.last_interim_request >= interval * SAMPLE_RATE
        busy = seg.interim_task is not None and not seg.interim_task.done()
        # Behind the live audio (the machine is overloaded): an interim of audio this old
        # would show nothing new by the time it came back; the final will.
        behind = self._queued_samples > _BEHIND_S * SAMPLE_RATE and not o.synchronous
        if due and not busy and behind:
            seg.last_interim_request = self._samples_in
            self.skipped_interims += 1
            metrics.skipped_interim()
        elif due and not busy:
            seg.last_interim_request = self._samples_in
            task = asyncio.create_task(self._interim(seg, self._samples_in))
            seg.interim_task = task
            if o.synchronous:
                await task

    async def _interim(self, seg: _Segment, end: int) -> None:
        confirmed = seg.agreement.confirmed
        from_sample = seg.start
        if confirmed and self.options.interim_tail_only:
            # Only the audio after the confirmed words is decoded again (plus context).
            from_sample = max(seg.start, int(confirmed[-1].end * SAMPLE_RATE))
        try:
            hyp, verdict = await self._decode(
                RequestKind.INTERIM,
                from_sample,
                end,
                self.options.beam_size,
                seam=confirmed if from_sample > seg.start else self._last_final_words,
            )
        except Superseded:
            return
        if seg is not self._seg:
            return  # the segment was finalised or cut meanwhile
        self._show_interim(seg, hyp, verdict, end)

    def _show_interim(
        self, seg: _Segment, hyp: Hypothesis, verdict: GuardVerdict, end: int
    ) -> None:
        if verdict.rejected:
            return
        stall_s = self.options.stall_cut_s
        ended = verdict.words[-1].end if verdict.words else seg.start / SAMPLE_RATE
        stalled = stall_s > 0 and end / SAMPLE_RATE - ended >= stall_s and bool(verdict.words)
        seg.stalls = seg.stalls + 1 if stalled else 0
        _, seg.tentative = seg.agreement.insert(verdict.words)
        seg.language = hyp.language or seg.language
        confirmed = seg.agreement.confirmed
        shown = confirmed + seg.tentative
        text = join_words(shown)
        if not text or text == seg.last_emitted_text:
            return
        seg.last_emitted_text = text
        seg.interims_emitted += 1
        self._emit(
            TranscriptEvent(
                TranscriptEventType.INTERIM,
                self._seg_index,
                shown[0].start,
                shown[-1].end,
                text=text,
                words=shown,
                confirmed_words=len(confirmed),
                language=hyp.language,
                revision=seg.revision,
            )
        )
        seg.revision += 1

    async def _final_decode(self, seg: _Segment, end: int) -> tuple[Hypothesis, GuardVerdict]:
        """The decode a final comes from: the whole segment, or with ``final_tail_only`` the
        confirmed words plus a decode of what follows them."""
        confirmed = seg.agreement.confirmed
        o = self.options
        start = seg.start
        tail_only = o.final_tail_only or (0 < o.final_tail_after_s <= (end - start) / SAMPLE_RATE)
        if not tail_only or not confirmed:
            return await self._decode(
                RequestKind.FINAL, start, end, o.final_beam_size, seam=self._last_final_words
            )
        from_sample = max(start, int(confirmed[-1].end * SAMPLE_RATE))
        hyp, verdict = await self._decode(
            RequestKind.FINAL, from_sample, end, o.final_beam_size, seam=confirmed
        )
        if verdict.rejected == "silence_phrase":
            return hyp, verdict
        words = confirmed + (verdict.words if not verdict.rejected else ())
        joined = replace(hyp, words=words, text=join_words(words))
        return joined, GuardVerdict(words, joined.text)

    async def _cut_long_segment(self, seg: _Segment, seg_len: float) -> bool:
        """Finalise a long segment's words up to a cut point (:func:`cut_point`); True when
        the segment was finalised."""
        o = self.options
        confirmed = seg.agreement.confirmed
        shown = confirmed + seg.tentative
        stalled = seg.stalls >= max(2, o.agreement) and bool(shown)
        if seg_len < o.trim_after_s and not stalled:
            return False
        cut = cut_point(
            confirmed,
            seg.tentative,
            earliest_end_s=seg.start / SAMPLE_RATE + MIN_CUT_S,
            stalled=stalled,
            after_tentative=o.cut_on_tentative,
            within_tentative=0 < o.tentative_cut_after_s <= seg_len,
            clauses=0 < o.clause_cut_after_s <= seg_len,
            at_limit=seg_len >= o.max_segment_s,
        )
        if cut is None:
            if seg_len < o.max_segment_s + 4.0:
                return False
            # Nothing confirmed for a long time: decode what there is as a final.
            await self._end_segment(self._samples_in, reason="max_length")
            self._start_segment(self._samples_in)
            return True
        words = (confirmed + seg.tentative)[: cut + 1]
        seg.cancel_interim()
        cut_sample = max(int(round(words[-1].end * SAMPLE_RATE)), self._buf_start)
        if o.cut_decode:
            words, cut_sample = await self._decode_cut(seg, words, cut_sample)
        # By default the confirmed words are the final (no extra decode).
        self._emit_final(words, join_words(words), self.language_tracker.language or "")
        self._seam_open = True
        if stalled and cut == len(shown) - 1:
            # Whisper stopped after these words once: given them as context, it would again.
            self._context_from = cut_sample
        self._floor = cut_sample
        self._seg = None
        self._start_segment(cut_sample)
        self._drop_before(cut_sample)
        return True

    async def _decode_cut(
        self, seg: _Segment, words: tuple[Word, ...], cut_sample: int
    ) -> tuple[tuple[Word, ...], int]:
        """With ``cut_decode``: the cut's words from one more decode of the stretch, as at an
        endpoint (an early misrecognition may have been confirmed); the confirmed words when
        that decode fails."""
        try:
            _, verdict = await self._decode(
                RequestKind.FINAL,
                seg.start,
                cut_sample + self._pad,
                self.options.final_beam_size,
                seam=self._last_final_words,
            )
        except Superseded:
            return words, cut_sample
        limit = words[-1].end + 0.1
        decoded = tuple(w for w in verdict.words if (w.start + w.end) / 2 <= limit)
        if verdict.rejected or not decoded:
            return words, cut_sample
        return decoded, max(cut_sample, int(round(decoded[-1].end * SAMPLE_RATE)))

    async def _end_segment(self, end: int, *, reason: str) -> None:
        """Decode the segment up to ``end`` and emit its final (or retract its interims)."""
        if reason in ("flush", "close"):
            self._endpointer.force_end()
        seg = self._seg
        if seg is None:
            return
        start = seg.start
        spec = seg.speculation
        seg.speculation = None
        seg.cancel_interim()
        result: tuple[Hypothesis, GuardVerdict] | None = None
        try:
            if spec is not None and spec.end == end:
                result = await spec.task
            elif end - start >= WINDOW:
                result = await self._final_decode(seg, end)
        except Superseded:
            result = None
        except Exception:  # noqa: BLE001 - keep what was confirmed rather than lose it
            logger.exception(
                "stream %s: final decode failed; keeping confirmed words", self.stream_id
            )
            result = None
        if spec is not None and spec.end != end:
            spec.task.cancel()
        confirmed = seg.agreement.confirmed
        if result is None:
            language = self.language_tracker.language or ""
            fallback = Hypothesis(words=confirmed, language=language, text=join_words(confirmed))
            result = (fallback, GuardVerdict(confirmed, fallback.text))
        elif self.options.retry_finals and end - start >= WINDOW:
            result = await self._recover(seg, end, result)
        hyp, verdict = result
        seg_start_s, seg_end_s = start / SAMPLE_RATE, end / SAMPLE_RATE
        if verdict.rejected or not verdict.text:
            if seg.interims_emitted:
                self.retracted_segments += 1
                logger.info(
                    "stream %s: segment %d retracted (%s)",
                    self.stream_id,
                    self._seg_index,
                    verdict.rejected or "empty",
                )
                self._emit_final((), "", hyp.language, start=seg_start_s, end=seg_end_s)
            else:
                self._seg_index += 1
        else:
            self.repeated_phrases += verdict.repeats
            self._emit_final(
                verdict.words, verdict.text, hyp.language, start=seg_start_s, end=seg_end_s
            )
        self._emit(
            TranscriptEvent(
                TranscriptEventType.SPEECH_ENDED, self._seg_index - 1, seg_start_s, seg_end_s
            )
        )
        self._seg = None
        self._seam_open = False
        self._silence_since = end
        self._floor = end
        self._context_from = end
        self._drop_before(end)

    async def _recover(
        self, seg: _Segment, end: int, result: tuple[Hypothesis, GuardVerdict]
    ) -> tuple[Hypothesis, GuardVerdict]:
        """Decode a failed final again; failing that, keep the confirmed words
        (:mod:`greffier.asr.recovery`)."""
        start = seg.start
        confirmed = seg.agreement.confirmed
        shown = seg.interims_emitted > 0
        keys_confirmed = [word_key(w) for w in confirmed]

        def keys(v: GuardVerdict) -> list[str]:
            return [word_key(w) for w in v.words]

        def covers(v: GuardVerdict) -> bool:
            return not confirmed or bool(v.words) and v.words[-1].end >= confirmed[-1].end - 0.3

        hyp, verdict = result
        changed = bool(seg.language and hyp.language and hyp.language != seg.language)
        if changed and verdict.words and not verdict.rejected:
            # The final heard another language than the interims (detected on the whole
            # utterance): their confirmed words were a misheard, translated rendering.
            return result
        if (
            judge(
                verdict.rejected, keys(verdict), keys_confirmed, shown=shown, covers=covers(verdict)
            )
            is Verdict.ACCEPT
        ):
            return result
        had_context = self._context_start(start) < start
        best = result
        for attempt in retry_plan(self.options.final_beam_size, had_context=had_context):
            self.final_retries += 1
            try:
                candidate = await self._decode(
                    RequestKind.FINAL,
                    start,
                    end,
                    attempt.beam_size,
                    seam=self._last_final_words,
                    with_context=attempt.with_context,
                    temperatures=attempt.temperatures,
                )
            except Superseded:
                continue
            c_hyp, c_verdict = candidate
            verdict_now = judge(
                c_verdict.rejected,
                keys(c_verdict),
                keys_confirmed,
                shown=shown,
                covers=covers(c_verdict),
            )
            if verdict_now is Verdict.ACCEPT and not c_verdict.rejected:
                return candidate
            if not c_verdict.rejected and better(keys(c_verdict), keys(best[1]), keys_confirmed):
                best = candidate
        b_hyp, b_verdict = best
        if b_verdict.rejected == "silence_phrase" or not confirmed:
            return best
        if not b_verdict.rejected and b_verdict.words:
            # the best decode lost confirmed words: keep them, then what it heard after them
            after = tuple(w for w in b_verdict.words if (w.start + w.end) / 2 > confirmed[-1].end)
            if after and word_key(after[0]) == word_key(confirmed[-1]):
                after = after[1:]
            words = confirmed + drop_seam_repeat(confirmed, after)
        else:
            words = confirmed
        self.confirmed_fallbacks += 1
        fallback = Hypothesis(
            words=words, language=b_hyp.language or hyp.language, text=join_words(words)
        )
        return fallback, GuardVerdict(words, fallback.text)

    def _emit_final(
        self,
        words: tuple[Word, ...],
        text: str,
        language: str,
        *,
        start: float | None = None,
        end: float | None = None,
    ) -> None:
        if words:
            # Nothing said twice: within the final, and across the seam with the last one.
            start = words[0].start if start is None else start
            end = words[-1].end if end is None else end
            kept, removed = drop_repeats(words)
            seamed = drop_seam_repeat(self._last_final_words, kept) if self._seam_open else kept
            removed += len(seamed) < len(kept)
            if removed:
                self.repeated_phrases += removed
                words, text = seamed, join_words(seamed)
        s = words[0].start if words else (start or 0.0)
        e = words[-1].end if words else (end or s)
        self._emit(
            TranscriptEvent(
                TranscriptEventType.FINAL,
                self._seg_index,
                s,
                e,
                text=text,
                words=words,
                confirmed_words=len(words),
                language=language or self.language_tracker.language or "",
                revision=self._seg.revision if self._seg is not None else 0,
            )
        )
        if text:
            self._prompt = (self._prompt + " " + text).strip()[-_PROMPT_CHARS:]
            self._last_final_words = words
        self._seg_index += 1
