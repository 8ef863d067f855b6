"""Recordings to minutes: ``greffier transcribe`` and the service's transcription jobs.

The same code as live captioning, run on a whole file: PyAV decoding (any format FFmpeg reads),
speech chunks decoded in batches with short encoder windows (``asr.offline``), the
hallucination guard, and, with diarization, pyannote on the same audio with every word given
the speaker whose turns overlap it most (``assign_speakers``), segments cut at speaker changes.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from greffier.asr.guards import HallucinationGuard
from greffier.asr.offline import ChunkingOptions, transcribe_recording
from greffier.core.audio import SAMPLE_RATE, FloatArray, read_audio_with_info
from greffier.core.config import Settings
from greffier.core.errors import AudioFormatError, ConfigurationError
from greffier.core.log import get_logger
from greffier.core.text import language_code
from greffier.core.types import (
    Hypothesis,
    Speaker,
    SpeakerTurn,
    TranscriptSegment,
    clean_name,
    join_words,
)
from greffier.diarization.assign import assign_speakers, speaker_parts
from greffier.models.manager import MODELS, diarization_key, whisper_key
from greffier.subtitles.cues import cue_rules
from greffier.subtitles.formats import FORMATS, write_all
from greffier.subtitles.minutes import Minutes, assemble_minutes

if TYPE_CHECKING:
    from greffier.asr.whisper import WhisperDecoder
    from greffier.diarization.pyannote_adapter import PyannoteDiarizer

logger = get_logger("recordings")

CUDA_BATCH_SIZE = 16
CPU_BATCH_SIZE = 4  # measured: 4 chunks per call decode 1.7x faster than one by one on 2 cores
"""Whisper segments decoded together on CUDA (``BatchedInferencePipeline``); 0 on CPU."""


def parse_formats(formats: Sequence[str]) -> list[str]:
    """Formats asked for, lower-cased and deduplicated; a ConfigurationError for unknown ones."""
    wanted = list(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ConfigurationError(
            f"unknown output format{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
            hint=f"choose among: {', '.join(FORMATS)}",
        )
    if not wanted:
        raise ConfigurationError("no output format given", hint=f"use {','.join(FORMATS)}")
    return wanted


def load_decoder(settings: Settings) -> WhisperDecoder:
    """The Whisper model of ``settings.asr``, loaded once per process (``models.manager``;
    blocking, seconds the first time). Recordings are not live: with ``cpu_threads`` unset,
    every core decodes."""
    import os

    from greffier.asr.whisper import WhisperDecoder

    asr = settings.asr
    if asr.cpu_threads == 0:
        asr = asr.model_copy(update={"cpu_threads": os.cpu_count() or 1})
    cache_dir = settings.cache_dir
    return MODELS.get(whisper_key(asr, cache_dir), lambda: WhisperDecoder.load(asr, cache_dir))


def load_diarizer(settings: Settings) -> PyannoteDiarizer:
    """The diarization pipeline of ``settings.diarization``, loaded once per process
    (``models.manager``; blocking, seconds the first time)."""
    from greffier.diarization.pyannote_adapter import PyannoteDiarizer

    wanted = settings.diarization
    return MODELS.get(diarization_key(wanted), lambda: PyannoteDiarizer.load(wanted))


def _language(language: str | None, settings: Settings) -> str | None:
    return language_code(language) if language else settings.asr.language_code


def recording_start(path: Path, duration_s: float) -> datetime:
    """When the recording began, as well as a file tells: its modification time less its
    duration, in the local time zone."""
    try:
        ended = path.stat().st_mtime
    except OSError:
        ended = time.time()
    return datetime.fromtimestamp(ended - duration_s).astimezone()


def _speaker_of(label: str | None, default: Speaker) -> Speaker:
    if label is None:
        return default
    label = clean_name(label, "?")
    return Speaker(identity=f"speaker-{label}", name=clean_name(f"Speaker {label}"))


def hypotheses_to_segments(
    hypotheses: Sequence[Hypothesis],
    default_speaker: Speaker,
    turns: Sequence[SpeakerTurn] | None = None,
) -> list[TranscriptSegment]:
    """Final segments from long-form hypotheses (those without words are dropped).

    With ``turns``, each word gets a speaker (``assign_speakers``) and a hypothesis is split
    where the speaker changes; words no turn explains join the speaker before them.
    """
    kept = [h for h in hypotheses if h.words]
    words_in_order = [w for h in kept for w in h.words]
    labels: list[str | None] = [None] * len(words_in_order)
    if turns is not None:
        labels = assign_speakers(words_in_order, turns)
    segments = []
    offset = 0
    for i, hyp in enumerate(kept):
        own = labels[offset : offset + len(hyp.words)]
        offset += len(hyp.words)
        for part in speaker_parts(f"seg-{i:05d}", hyp.words, own):
            words = part.words
            text = join_words(words)
            if not text:
                continue
            segments.append(
                TranscriptSegment(
                    segment_id=part.segment_id,
                    speaker=_speaker_of(part.label, default_speaker),
                    start=words[0].start,
                    end=max(words[-1].end, words[0].start),
                    text=text,
                    language=hyp.language,
                    words=words,
                )
            )
    return segments


def transcribe_file(
    path: str | Path,
    settings: Settings,
    *,
    diarize: bool = False,
    language: str | None = None,
    decoder: WhisperDecoder | None = None,
    diarizer: PyannoteDiarizer | None = None,
    progress: Callable[[float], None] | None = None,
    title: str | None = None,
    started_at: datetime | None = None,
) -> Minutes:
    """Minutes of one recording (blocking: seconds to minutes).

    ``language``: a Whisper code, ``auto`` to detect, None for ``settings.asr.language``.
    ``decoder`` and ``diarizer`` are loaded from ``settings`` when not given (give them to
    transcribe several files with one model). ``progress`` receives the seconds of audio
    decoded so far. Raises AudioFormatError for a missing or undecodable file (before any
    model is loaded). The title defaults to the file's stem, the start to its modification
    time less its duration.
    """
    path = Path(path)
    audio, info = read_audio_with_info(path)
    return transcribe_audio(
        audio,
        settings,
        name=path.stem,
        diarize=diarize,
        language=language,
        decoder=decoder,
        diarizer=diarizer,
        progress=progress,
        title=title,
        started_at=started_at or recording_start(path, info.duration),
    )


def transcribe_audio(
    audio: FloatArray,
    settings: Settings,
    *,
    name: str,
    started_at: datetime,
    diarize: bool = False,
    language: str | None = None,
    decoder: WhisperDecoder | None = None,
    diarizer: PyannoteDiarizer | None = None,
    progress: Callable[[float], None] | None = None,
    title: str | None = None,
) -> Minutes:
    """Minutes of decoded audio (float32 mono 16 kHz), as :func:`transcribe_file`; ``name``
    is the speaker's name without diarization (and the default title)."""
    duration = audio.size / SAMPLE_RATE
    lang = _language(language, settings)
    decoder = decoder or load_decoder(settings)
    batch_size = CUDA_BATCH_SIZE if decoder.device.device == "cuda" else CPU_BATCH_SIZE
    guard = HallucinationGuard()
    started = time.perf_counter()
    hypotheses = []
    rejected = 0
    too_short = audio.size < SAMPLE_RATE // 10  # nothing Whisper could hear
    for hyp in (
        ()
        if too_short
        else transcribe_recording(
            decoder,
            audio,
            language=lang,
            beam_size=settings.asr.recording_beam_size,
            options=ChunkingOptions.from_settings(settings.vad, batch_size=batch_size),
            progress=progress,
        )
    ):
        verdict = guard.check(hyp)
        if verdict.rejected or not verdict.words:
            rejected += 1
            continue
        hypotheses.append(dataclasses.replace(hyp, words=verdict.words, text=verdict.text))
    if progress is not None:
        progress(duration)
    logger.info(
        "transcribed %.1f s of audio in %.1f s (%d segments, %d rejected)",
        duration,
        time.perf_counter() - started,
        len(hypotheses),
        rejected,
    )
    turns: list[SpeakerTurn] | None = None
    if diarize:
        diarizer = diarizer or load_diarizer(settings)
        started = time.perf_counter()
        turns = diarizer.diarize(audio)
        logger.info(
            "diarized %.1f s of audio in %.1f s (%d speakers)",
            duration,
            time.perf_counter() - started,
            len({t.speaker for t in turns}),
        )
    default_speaker = Speaker(identity="speaker", name=clean_name(name, "speaker"))
    segments = hypotheses_to_segments(hypotheses, default_speaker, turns)
    return assemble_minutes(segments, title=title or name, started_at=started_at, turns=turns)


class _Progress:
    """A tqdm bar over the seconds of one file, fed the absolute seconds done."""

    def __init__(self, total_s: float, name: str, stream: TextIO) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=round(total_s, 1),
            desc=name,
            unit="s",
            file=stream,
            leave=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
            "[{elapsed}<{remaining}]",
            mininterval=0.5,
        )
        self._done = 0.0

    def __call__(self, seconds: float) -> None:
        seconds = min(round(seconds, 1), float(self._bar.total or 0))
        if seconds > self._done:
            self._bar.update(seconds - self._done)
            self._done = seconds

    def close(self) -> None:
        self._bar.close()


def run_transcribe(
    settings: Settings,
    files: Sequence[Path],
    *,
    formats: Sequence[str],
    diarize: bool,
    output_dir: Path | None,
    profile: str = "default",
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``greffier transcribe``: minutes of each file written as ``<stem>.<ext>`` next to it
    (or in ``output_dir``); prints the paths written. Returns 0, 1 when a file failed (the
    others are still processed), or 2 for unusable arguments."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        wanted = parse_formats(formats)
        rules = cue_rules(profile)
    except ConfigurationError as e:
        print(f"greffier: error: {e}", file=err)
        return 2
    failed = 0
    present = []
    for path in files:
        if path.is_file():
            present.append(path)
        else:
            what = "a directory, not a file" if path.is_dir() else "no such file"
            print(f"greffier: error: {path}: {what}", file=err)
            failed += 1
    decoder: WhisperDecoder | None = None
    diarizer: PyannoteDiarizer | None = None
    for path in present:
        try:
            audio, info = read_audio_with_info(path)
        except AudioFormatError as e:
            print(
                f"greffier: error: {path}: not an audio or video file greffier can decode ({e})",
                file=err,
            )
            failed += 1
            continue
        decoder = decoder or load_decoder(settings)
        if diarize:
            diarizer = diarizer or load_diarizer(settings)
        bar = _Progress(info.duration, path.name, err)
        try:
            minutes = transcribe_audio(
                audio,
                settings,
                name=path.stem,
                diarize=diarize,
                decoder=decoder,
                diarizer=diarizer,
                progress=bar,
                started_at=recording_start(path, info.duration),
            )
        finally:
            bar.close()
        stem = (output_dir / path.stem) if output_dir is not None else path.with_suffix("")
        try:
            written = write_all(minutes, stem, wanted, rules)
        except OSError as e:
            print(f"greffier: error: cannot write the minutes of {path}: {e}", file=err)
            failed += 1
            continue
        for p in written:
            print(p, file=out)
    if failed:
        print(
            f"greffier: {failed} of {len(files)} file{'s' if len(files) > 1 else ''} failed",
            file=err,
        )
    return 1 if failed else 0
