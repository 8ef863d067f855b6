"""Shared microphones: telling apart the people who speak into one track.

Live, an :class:`~greffier.diarization.online.OnlineDiarizer` re-diarizes the last window of the
track every step (on a thread; one pyannote pipeline per process), and each final's words get
the speaker of the turn they fall in, so captions read "Room 3 (2)". The track's audio is kept
on disk; at the end of the meeting the whole recording is diarized once more and the stored
segments of the track are relabelled from that, for the minutes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from greffier.core.audio import SAMPLE_RATE, FloatArray, float32_to_pcm16, pcm16_to_float32
from greffier.core.config import DiarizationSettings
from greffier.core.log import error_summary, get_logger, spawn
from greffier.core.timeline import StreamTimeline
from greffier.core.types import (
    Speaker,
    SpeakerTurn,
    TranscriptSegment,
    Word,
    clean_name,
    join_words,
)
from greffier.diarization.assign import assign_speakers, speaker_parts, whole_id
from greffier.diarization.online import OnlineDiarizer
from greffier.models.manager import MODELS, diarization_key

if TYPE_CHECKING:
    from greffier.diarization.pyannote_adapter import PyannoteDiarizer

logger = get_logger("agents.shared_mic")

_EXECUTOR = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="greffier-diarize")


def shared_diarizer(settings: DiarizationSettings) -> PyannoteDiarizer:
    """The process's pyannote pipeline (:data:`~greffier.models.manager.MODELS`; loaded on
    first use, blocking)."""
    from greffier.diarization.pyannote_adapter import PyannoteDiarizer

    return MODELS.get(diarization_key(settings), lambda: PyannoteDiarizer.load(settings))


class SharedMicrophone:
    """Live and end-of-meeting diarization of one track (times: the track's stream time)."""

    def __init__(self, settings: DiarizationSettings, recording: Path) -> None:
        self.settings = settings
        self.recording = recording
        recording.parent.mkdir(parents=True, exist_ok=True)
        self._file = recording.open("ab")
        self._online: OnlineDiarizer | None = None
        self._turns: list[SpeakerTurn] = []
        self._pending = np.zeros(0, np.float32)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closed = False

    async def start(self) -> None:
        """Load the pipeline (once per process) and start following the track."""
        loop = asyncio.get_running_loop()
        diarizer = await loop.run_in_executor(_EXECUTOR, shared_diarizer, self.settings)
        self._online = OnlineDiarizer.from_settings(diarizer, self.settings)
        self._online.push(self._pending)
        self._pending = np.zeros(0, np.float32)
        self._task = spawn(
            self._follow(), name=f"greffier-diarize-{self.recording.stem}", logger=logger
        )

    def push(self, samples: FloatArray) -> None:
        """Audio of the track, as the transcriber gets it."""
        self._file.write(float32_to_pcm16(samples).tobytes())
        if self._online is None:
            self._pending = np.concatenate([self._pending, samples])
        else:
            self._online.push(samples)

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._online is not None
        online = self._online
        while not self._closed:
            await asyncio.sleep(0.5)
            if online.ready():
                try:
                    await loop.run_in_executor(_EXECUTOR, online.poll)
                except Exception as e:  # noqa: BLE001 - captions go on with the last labels
                    logger.error("live diarization failed on a window: %s", error_summary(e))
                    continue
                self._turns = online.timeline()
                logger.debug(
                    "diarized up to %.1f s: %d turns, %d speakers",
                    online.duration,
                    len(self._turns),
                    len({t.speaker for t in self._turns}),
                )

    async def catch_up(self, until: float, timeout: float = 3.0) -> None:
        """Diarize up to ``until`` (stream time) before labelling a final, waiting at most
        ``timeout``: a new voice is then recognised in its own first caption."""
        online = self._online
        if online is None or online.diarized_until() >= until:
            return
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(_EXECUTOR, online.poll_now)
        try:
            await asyncio.wait_for(asyncio.shield(job), timeout)
        except TimeoutError:
            logger.warning("live diarization lags; labelling with what is known")
            return
        self._turns = online.timeline()

    def label_words(self, words: tuple[Word, ...]) -> list[str]:
        """The speaker of each word (stream time); the latest known speaker where the
        diarization has not caught up yet."""
        labels = assign_speakers(words, self._turns) if self._turns else [None] * len(words)
        out: list[str] = []
        for word, label in zip(words, labels, strict=True):
            if label is None:
                before = [t for t in self._turns if t.start <= word.end]
                label = before[-1].speaker if before else (out[-1] if out else "1")
            out.append(label)
        return [clean_name(label, "1") for label in out]

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._file.close()

    async def refine(
        self, segments: list[TranscriptSegment], timeline: StreamTimeline
    ) -> list[TranscriptSegment]:
        """Diarize the whole recording and relabel the track's stored segments with it."""
        audio = pcm16_to_float32(self.recording.read_bytes())
        if audio.size < SAMPLE_RATE:
            return segments
        loop = asyncio.get_running_loop()
        diarizer = await loop.run_in_executor(_EXECUTOR, shared_diarizer, self.settings)
        turns = await loop.run_in_executor(_EXECUTOR, diarizer.diarize, audio)
        meeting_turns = [
            SpeakerTurn(timeline.to_meeting(t.start), timeline.to_meeting(t.end), t.speaker)
            for t in turns
        ]
        return relabel_segments(segments, meeting_turns)


def relabel_segments(
    segments: list[TranscriptSegment], turns: list[SpeakerTurn]
) -> list[TranscriptSegment]:
    """Split and relabel segments by the speakers of their words (meeting time).

    The parts a live split made of one final (``<id>``, ``<id>.1``...) are joined again and
    split anew, so the new parts take the same ids without colliding with the old ones.
    """
    out: list[TranscriptSegment] = []
    firsts: dict[str, TranscriptSegment] = {}
    wholes: dict[str, list[Word]] = {}
    for seg in segments:
        if not seg.words:
            out.append(seg)
            continue
        key = whole_id(seg.segment_id)
        firsts.setdefault(key, seg)
        wholes.setdefault(key, []).extend(seg.words)
    for segment_id, words in wholes.items():
        first = firsts[segment_id]
        labels = assign_speakers(words, turns)
        for part in speaker_parts(segment_id, words, labels):
            label = clean_name(part.label, "1") if part.label else first.speaker.label
            out.append(
                TranscriptSegment(
                    segment_id=part.segment_id,
                    speaker=Speaker(first.speaker.identity, first.speaker.name, label),
                    start=part.words[0].start,
                    end=part.words[-1].end,
                    text=join_words(part.words),
                    language=first.language,
                    words=part.words,
                    track_sid=first.track_sid,
                )
            )
    return out
