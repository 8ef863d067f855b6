"""faster-whisper / CTranslate2 adapter: the only module that imports them.

Two ways in:

* :meth:`WhisperDecoder.decode_batch` decodes short buffers (up to 30 s) for streaming. It
  encodes only as much audio as the request holds, plus ``encoder_pad_s`` of silence, rounded
  to 2 s buckets, instead of Whisper's fixed 30 s window: on two CPU cores that is ~10x less
  encoder work for a 5 s utterance at the same WER (see ``benchmarks/``).
* :meth:`WhisperDecoder.transcribe` runs faster-whisper's own long-form decoding (with its VAD)
  on a whole recording; on CUDA it batches through ``BatchedInferencePipeline``.

Library results are converted to :class:`greffier.core.types.Hypothesis` here.
"""

from __future__ import annotations

import math
import os
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from greffier.core.audio import SAMPLE_RATE, FloatArray
from greffier.core.config import AsrSettings
from greffier.core.errors import MissingDependencyError, ModelNotFoundError
from greffier.core.log import get_logger
from greffier.core.priority import new_threads_lowered
from greffier.core.text import SENTENCE_END
from greffier.core.types import Hypothesis, Word
from greffier.models.device import DeviceChoice, resolve_device
from greffier.models.registry import ResolvedModel, resolve_whisper_model

if TYPE_CHECKING:
    import ctranslate2

logger = get_logger("asr.whisper")

HOP = 160  # samples per mel frame (10 ms)
_BUCKET_FRAMES = 200  # encoder lengths are multiples of 2 s, to bound shape variety
_MAX_FRAMES = 3000
_PREPEND_PUNCT = "\"'“¿([{-"
_APPEND_PUNCT = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """How to decode one buffer."""

    language: str | None = None
    """Whisper language code; None detects it from the audio."""
    prompt: str = ""
    """Previous text, given to Whisper as context."""
    beam_size: int = 1
    word_timestamps: bool = True
    segment_timestamps: bool = False
    """Let Whisper write its timestamp tokens (long-form mode: steadier on long chunks holding
    several sentences); they are dropped from the text, words are timed by alignment."""
    encoder_pad_s: float = 3.0
    temperatures: tuple[float, ...] = (0.0,)
    """Whisper's temperature fallback: when the decode is a repetition loop or improbable, sample
    again at each following temperature (used to retry a final; greedy/beam otherwise)."""


_ZERO_S = 0.02
_LOOP_WORDS = 3


def padding_loop_start(words: Sequence[Word]) -> int:
    """Index of the first word Whisper wrote without audio under it (``len(words)`` if none).

    Given a buffer that ends in a pause, Whisper may continue into the padding by repeating
    itself ("Printing Printing Printing...", or a clause said again): the alignment gives
    those words no duration. The loop starts at a run of ``_LOOP_WORDS`` zero-length words
    after which nearly every word is zero-length (a run in the middle of real speech, where
    the alignment squeezed a few fast words, is left alone).
    """
    zero = [w.end - w.start < _ZERO_S for w in words]
    run = 0
    for i, z in enumerate(zero):
        run = run + 1 if z else 0
        if run == _LOOP_WORDS:
            start = i - run + 1
            rest = zero[start:]
            if sum(rest) >= 0.8 * len(rest):
                return start
    return len(words)


def _needs_fallback(hyp: Hypothesis) -> bool:
    """Whisper's own criteria for decoding again at a higher temperature."""
    if hyp.no_speech_probability > 0.6 and hyp.avg_logprob < -1.0:
        return False  # silence: no temperature will help
    return hyp.compression_ratio > 2.4 or hyp.avg_logprob < -1.0 or not hyp.text.strip()


def _import_faster_whisper() -> Any:
    try:
        import faster_whisper
    except ImportError as e:
        raise MissingDependencyError.for_extra("faster_whisper", "asr") from e
    return faster_whisper


def compression_ratio(text: str) -> float:
    """gzip compression ratio of a text; high values mean repetition (hallucination loops)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class WhisperDecoder:
    """One loaded Whisper model. Calls are serialised by a lock; use one per process."""

    def __init__(self, model: Any, resolved: ResolvedModel, device: DeviceChoice) -> None:
        fw = _import_faster_whisper()
        from faster_whisper.tokenizer import Tokenizer

        self._model = model
        self._ct2: ctranslate2.models.Whisper = model.model
        self.resolved = resolved
        self.device = device
        self.multilingual: bool = bool(self._ct2.is_multilingual)
        self._tokenizer_cls = Tokenizer
        self._tokenizers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._fw = fw
        self._suppress: tuple[int, ...] | None = None
        self.n_mels: int = int(model.feature_extractor.mel_filters.shape[0])

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, settings: AsrSettings, cache_dir: Path) -> WhisperDecoder:
        """Resolve the model name and load it (blocking; call once per process)."""
        fw = _import_faster_whisper()
        import ctranslate2

        resolved = resolve_whisper_model(settings.model, cache_dir)
        device = resolve_device(
            settings.device,
            settings.compute_type,
            library="ctranslate2",
            cuda_available=lambda: ctranslate2.get_cuda_device_count() > 0,
        )
        threads = settings.cpu_threads or max(1, (os.cpu_count() or 1) - 1)
        try:
            with new_threads_lowered():  # its compute threads yield to audio and captions
                model = fw.WhisperModel(
                    resolved.location,
                    device=device.device,
                    compute_type=device.compute_type,
                    cpu_threads=threads if device.device == "cpu" else 0,
                    num_workers=1,
                    download_root=str(cache_dir / "hub") if not resolved.is_local else None,
                )
        except (OSError, ValueError, RuntimeError) as e:
            if resolved.is_local:
                raise ModelNotFoundError(f"cannot load model from {resolved.location}: {e}") from e
            raise ModelNotFoundError(
                f"cannot fetch model {resolved.name!r} from the Hugging Face hub: {e}",
                hint="without a hub, use a shipped model (tiny.en, base) or a local directory",
            ) from e
        logger.info(
            "loaded Whisper model %s (%s) on %s/%s",
            resolved.name,
            resolved.source,
            device.device,
            device.compute_type,
        )
        return cls(model, resolved, device)

    # -- helpers -------------------------------------------------------------------------

    def _tokenizer(self, language: str) -> Any:
        tok = self._tokenizers.get(language)
        if tok is None:
            tok = self._tokenizer_cls(
                self._model.hf_tokenizer,
                self.multilingual,
                task="transcribe",
                language=language if self.multilingual else "en",
            )
            self._tokenizers[language] = tok
        return tok

    def _suppressed(self, tokenizer: Any) -> list[int]:
        if self._suppress is None:
            from faster_whisper.transcribe import get_suppressed_tokens

            self._suppress = tuple(get_suppressed_tokens(tokenizer, (-1,)) or ())
        return list(self._suppress)

    def _features(self, audios: Sequence[FloatArray], pad_s: float) -> tuple[np.ndarray, list[int]]:
        """Log-mel features of each audio, zero-padded to a common bucketed length."""
        content = [max(1, a.size // HOP) for a in audios]
        target = max(content) + int(pad_s * 100)
        target = min(_MAX_FRAMES, int(math.ceil(target / _BUCKET_FRAMES) * _BUCKET_FRAMES))
        batch = np.zeros((len(audios), self.n_mels, target), dtype=np.float32)
        for i, audio in enumerate(audios):
            # Pad the features, not the audio, with zeros: measured on the English clips,
            # tiny.en scores 6.3 % WER this way against 8.9 % with zero audio.
            mel = self._model.feature_extractor(audio[: target * HOP])
            n = min(mel.shape[1], target)
            batch[i, :, :n] = mel[:, :n]
        return batch, [min(c, target) for c in content]

    def _encode(self, features: np.ndarray) -> Any:
        import ctranslate2

        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
        return self._ct2.encode(view, to_cpu=False)

    # -- language ------------------------------------------------------------------------

    def detect_language(self, audio: FloatArray, pad_s: float = 3.0) -> tuple[str, float]:
        """Most likely language of ``audio`` and its probability."""
        if not self.multilingual:
            return "en", 1.0
        with self._lock:
            features, _ = self._features([audio], pad_s)
            encoded = self._encode(features)
            return self._detect(encoded)[0]

    def _detect(self, encoded: Any) -> list[tuple[str, float]]:
        results = self._ct2.detect_language(encoded)
        out = []
        for res in results:
            token, prob = res[0]
            out.append((token[2:-2], float(prob)))
        return out

    # -- streaming decode ----------------------------------------------------------------

    def decode_batch(
        self, requests: Sequence[tuple[FloatArray, DecodeOptions]]
    ) -> list[Hypothesis]:
        """Decode up to 30 s buffers, several at once when batched. Blocking."""
        if not requests:
            return []
        with self._lock:
            return self._decode_batch(requests)

    def _decode_batch(
        self, requests: Sequence[tuple[FloatArray, DecodeOptions]]
    ) -> list[Hypothesis]:
        audios = [np.asarray(a, dtype=np.float32)[: 30 * SAMPLE_RATE] for a, _ in requests]
        pad_s = max(o.encoder_pad_s for _, o in requests)
        features, content_frames = self._features(audios, pad_s)
        encoded = self._encode(features)

        languages: list[tuple[str, float]] = []
        detected: list[tuple[str, float]] | None = None
        for i, (_, opts) in enumerate(requests):
            if not self.multilingual:
                languages.append(("en", 1.0))
            elif opts.language:
                languages.append((opts.language, 1.0))
            else:
                if detected is None:
                    detected = self._detect(encoded)
                languages.append(detected[i])

        prompts: list[list[int]] = []
        max_new: list[int] = []
        for (audio, opts), (lang, _) in zip(requests, languages, strict=True):
            tok = self._tokenizer(lang)
            prompt: list[int] = []
            if opts.prompt.strip():
                prev = tok.encode(" " + opts.prompt.strip())
                prompt = [tok.sot_prev, *prev[-(223 - 4) :]]
            prompt += list(tok.sot_sequence)
            if not opts.segment_timestamps:
                prompt.append(tok.no_timestamps)
            prompts.append(prompt)
            # French runs to ~8 tokens a second; the bound stops runaway repetition loops.
            max_new.append(int(16 + 10 * audio.size / SAMPLE_RATE))
        hyps = self._generate(
            encoded,
            requests,
            prompts,
            max_new,
            content_frames,
            languages,
            beam=max(o.beam_size for _, o in requests),
            temperature=0.0,
        )
        for i, (_, opts) in enumerate(requests):
            if len(opts.temperatures) > 1 and _needs_fallback(hyps[i]):
                hyps[i] = self._fallback(
                    features[i : i + 1],
                    requests[i],
                    prompts[i],
                    max_new[i],
                    content_frames[i],
                    languages[i],
                    hyps[i],
                )
        return hyps

    def _fallback(
        self,
        features: np.ndarray,
        request: tuple[FloatArray, DecodeOptions],
        prompt: list[int],
        max_new: int,
        content_frames: int,
        language: tuple[str, float],
        first: Hypothesis,
    ) -> Hypothesis:
        """Whisper's temperature fallback for one request: sample at rising temperatures until
        a hypothesis is not a repetition loop nor improbable; else the most probable one."""
        encoded = self._encode(features)
        best = first
        for temperature in request[1].temperatures[1:]:
            if temperature <= 0:
                continue
            hyp = self._generate(
                encoded,
                [request],
                [prompt],
                [max_new],
                [content_frames],
                [language],
                beam=1,
                temperature=temperature,
            )[0]
            if not _needs_fallback(hyp):
                return hyp
            if hyp.avg_logprob > best.avg_logprob:
                best = hyp
        return best

    def _generate(
        self,
        encoded: Any,
        requests: Sequence[tuple[FloatArray, DecodeOptions]],
        prompts: list[list[int]],
        max_new: list[int],
        content_frames: list[int],
        languages: list[tuple[str, float]],
        *,
        beam: int,
        temperature: float,
    ) -> list[Hypothesis]:
        tokenizer0 = self._tokenizer(languages[0][0])
        sampling = {"sampling_topk": 0, "sampling_temperature": temperature} if temperature else {}
        results = self._ct2.generate(
            encoded,
            prompts,
            beam_size=1 if temperature else beam,
            patience=1.0,
            length_penalty=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            max_length=min(448, max(len(p) + m for p, m in zip(prompts, max_new, strict=True))),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppressed(tokenizer0),
            max_initial_timestamp_index=50 if requests[0][1].segment_timestamps else 0,
            **sampling,
        )
        token_lists: list[list[int]] = []
        for res, m in zip(results, max_new, strict=True):
            tokens = [t for t in res.sequences_ids[0] if t < tokenizer0.eot][:m]
            token_lists.append(tokens)

        words_per_item: list[list[Word]] = [[] for _ in requests]
        want_words = [i for i, (_, o) in enumerate(requests) if o.word_timestamps]
        if want_words:
            words_per_item = self._align(encoded, token_lists, content_frames, languages)

        hyps: list[Hypothesis] = []
        for i, res in enumerate(results):
            lang, lang_prob = languages[i]
            tok = self._tokenizer(lang)
            tokens = token_lists[i]
            text = tok.decode(tokens).strip()
            score = float(res.scores[0]) if res.scores else 0.0
            avg_logprob = score * max(1, len(tokens)) / (len(tokens) + 1)
            words: tuple[Word, ...] = ()
            if requests[i][1].word_timestamps:
                aligned = words_per_item[i]
                words = tuple(aligned[: padding_loop_start(aligned)])
                if len(words) < len(aligned):
                    # the loop is not in the audio: judge what is
                    text = "".join(w.text for w in words).strip()
            hyps.append(
                Hypothesis(
                    words=words,
                    language=lang,
                    language_probability=lang_prob,
                    no_speech_probability=float(res.no_speech_prob),
                    avg_logprob=avg_logprob,
                    compression_ratio=compression_ratio(text),
                    text=text,
                )
            )
        return hyps

    def _align(
        self,
        encoded: Any,
        token_lists: list[list[int]],
        content_frames: list[int],
        languages: list[tuple[str, float]],
    ) -> list[list[Word]]:
        from faster_whisper.transcribe import merge_punctuations

        out: list[list[Word]] = [[] for _ in token_lists]
        # align() takes one start sequence, and the batch shares the encoder output; items of
        # other languages are aligned in their own call on the same output.
        by_lang: dict[str, list[int]] = {}
        for i, (lang, _) in enumerate(languages):
            if token_lists[i]:
                by_lang.setdefault(lang, []).append(i)
        for lang, idxs in by_lang.items():
            tok = self._tokenizer(lang)
            aligned = self._ct2.align(
                encoded,
                tok.sot_sequence,
                [token_lists[i] if i in idxs else [tok.eot] for i in range(len(token_lists))],
                [content_frames[i] for i in range(len(token_lists))],
                median_filter_width=7,
            )
            for i in idxs:
                res = aligned[i]
                text_tokens = token_lists[i]
                words, word_tokens = tok.split_to_word_tokens(text_tokens + [tok.eot])
                if len(word_tokens) <= 1:
                    continue
                text_idx = np.array([p[0] for p in res.alignments])
                time_idx = np.array([p[1] for p in res.alignments])
                if text_idx.size == 0:
                    continue
                boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
                jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
                jump_times = time_idx[jumps] / 50.0  # 50 encoder positions per second
                if jump_times.size < boundaries.size:
                    continue
                starts = jump_times[boundaries[:-1]]
                ends = jump_times[boundaries[1:]]
                probs = res.text_token_probs
                alignment = [
                    {
                        "word": w,
                        "tokens": t,
                        "start": float(s),
                        "end": float(e),
                        "probability": float(np.mean(probs[a:b])) if b > a else 0.0,
                    }
                    for w, t, s, e, a, b in zip(
                        words[:-1],
                        word_tokens[:-1],
                        starts,
                        ends,
                        boundaries[:-1],
                        boundaries[1:],
                        strict=False,
                    )
                ]
                _clip_long_words(alignment)
                merge_punctuations(alignment, _PREPEND_PUNCT, _APPEND_PUNCT)
                limit = content_frames[i] / 100.0
                out[i] = [
                    Word(
                        start=round(min(a["start"], limit), 3),
                        end=round(min(max(a["end"], a["start"]), limit), 3),
                        text=a["word"],
                        probability=a["probability"],
                    )
                    for a in alignment
                    if a["word"]
                ]
        return out

    # -- offline -------------------------------------------------------------------------

    def transcribe(
        self,
        audio: FloatArray,
        *,
        language: str | None,
        beam_size: int = 5,
        batch_size: int = 0,
        progress: Callable[[float], None] | None = None,
    ) -> Iterator[Hypothesis]:
        """Long-form transcription of a whole recording with VAD, as faster-whisper does it.

        Yields one hypothesis per Whisper segment, word times relative to the recording.
        ``progress`` receives the seconds of audio done so far.
        """
        fw = self._fw
        lang = language if self.multilingual else "en"
        with self._lock:
            if batch_size > 1:
                pipeline = fw.BatchedInferencePipeline(model=self._model)
                segments, info = pipeline.transcribe(
                    audio,
                    language=lang,
                    beam_size=beam_size,
                    word_timestamps=True,
                    batch_size=batch_size,
                    vad_filter=True,
                )
            else:
                segments, info = self._model.transcribe(
                    audio,
                    language=lang,
                    beam_size=beam_size,
                    word_timestamps=True,
                    vad_filter=True,
                    condition_on_previous_text=False,
                )
            for seg in segments:
                words = tuple(
                    Word(round(w.start, 3), round(w.end, 3), w.word, float(w.probability))
                    for w in (seg.words or [])
                )
                if progress is not None:
                    progress(float(seg.end))
                yield Hypothesis(
                    words=words,
                    language=info.language,
                    language_probability=float(info.language_probability),
                    no_speech_probability=float(seg.no_speech_prob),
                    avg_logprob=float(seg.avg_logprob),
                    compression_ratio=float(seg.compression_ratio),
                    text=seg.text.strip(),
                )


def _clip_long_words(alignment: list[dict[str, Any]]) -> None:
    """Words at sentence boundaries may not last more than twice the median word."""
    durations = np.array([a["end"] - a["start"] for a in alignment])
    durations = durations[durations.nonzero()]
    if durations.size == 0:
        return
    median = min(0.7, float(np.median(durations)))
    longest = median * 2
    for i in range(1, len(alignment)):
        if alignment[i]["end"] - alignment[i]["start"] > longest:
            if alignment[i]["word"] in SENTENCE_END:
                alignment[i]["end"] = alignment[i]["start"] + longest
            elif alignment[i - 1]["word"] in SENTENCE_END:
                alignment[i]["start"] = alignment[i]["end"] - longest
    # The first word after silence tends to start too early.
    first = alignment[0]
    if first["end"] - first["start"] > longest * 2:
        first["start"] = first["end"] - longest
