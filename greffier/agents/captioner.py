"""Captions every microphone of a room: one :class:`TrackCaptioner` per subscribed track.

A track's audio (16 kHz mono from LiveKit) is pushed into a streaming transcriber; its events
are placed on the meeting timeline, given the speaker's name, handed to the final sink (the
transcript store) and published. Tracks come and go with participants: subscribe, mute
(flush), unpublish or leave (close, keeping the last final), rejoin (a new captioner).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from livekit import rtc

from greffier.agents.publisher import TrackPublisher
from greffier.agents.shared_mic import SharedMicrophone
from greffier.asr.engine import InferenceEngine
from greffier.asr.streaming import StreamingOptions, StreamingTranscriber
from greffier.core import metrics
from greffier.core.audio import SAMPLE_RATE, pcm16_to_float32
from greffier.core.config import DiarizationSettings
from greffier.core.log import get_logger, spawn
from greffier.core.timeline import StreamTimeline
from greffier.core.types import (
    CaptionUpdate,
    Speaker,
    TranscriptEvent,
    TranscriptEventType,
    clean_name,
    join_words,
)
from greffier.diarization.assign import SpeakerPart, speaker_parts
from greffier.subtitles.protocol import PARTICIPANT_SHARED_MIC_ATTRIBUTE, participant_language

logger = get_logger("agents.captioner")

FinalSink = Callable[[CaptionUpdate], Awaitable[None]]
_CAPTIONED_SOURCES = (rtc.TrackSource.SOURCE_MICROPHONE, rtc.TrackSource.SOURCE_UNKNOWN)


def speaker_of(participant: rtc.Participant) -> Speaker:
    """A participant as a speaker: the display name cleaned (one line, no control characters,
    capped: :func:`~greffier.core.types.clean_name`), falling back to the identity."""
    return Speaker(
        identity=participant.identity, name=clean_name(participant.name, participant.identity)
    )


AUDIO_FRAME_MS = 50
"""Audio frames the captioner asks LiveKit for: five times fewer events per second than its
default 10 ms, for 40 ms at most of added delay (the VAD hears 32 ms windows)."""


def track_audio(track: rtc.Track) -> rtc.AudioStream:
    """The track's audio as 16 kHz mono frames of :data:`AUDIO_FRAME_MS`, delivered to this
    stream only (:func:`narrow_subscription`)."""
    stream = rtc.AudioStream.from_track(
        track=track, sample_rate=SAMPLE_RATE, num_channels=1, frame_size_ms=AUDIO_FRAME_MS
    )
    if not narrow_subscription(stream):
        logger.warning("audio events not filtered per stream (livekit SDK changed)")
    return stream


def narrow_subscription(stream: rtc.AudioStream) -> bool:
    """Deliver to ``stream``'s event loop only its own frames; whether it could.

    The pinned ``livekit`` 1.1.21 (``livekit-agents`` 1.8.9 requires that exact version) hands
    every audio frame of every stream in the process to the event loop of every
    ``AudioStream``, where all but one stream drop it: N captioned tracks cost N x N loop
    wake-ups (livekit/python-sdks#812, filtered per stream from livekit 1.2). At 20 tracks
    that starved the worker's event loops (captions published a minute late, tracks
    subscribed a minute late). The filter is narrowed at the source, as livekit 1.2 does.
    """
    from livekit.rtc._ffi_client import FfiClient

    queue = getattr(stream, "_ffi_queue", None)
    handle = getattr(getattr(stream, "_ffi_handle", None), "handle", None)
    events = FfiClient.instance.queue
    subscribers = getattr(events, "_subscribers", None)
    if queue is None or handle is None or not isinstance(subscribers, list):
        return False

    def own_frames(event: Any) -> bool:
        return bool(
            event.WhichOneof("message") == "audio_stream_event"
            and event.audio_stream_event.stream_handle == handle
        )

    with events._lock:
        for i, entry in enumerate(subscribers):
            if entry[0] is queue:
                subscribers[i] = (entry[0], entry[1], own_frames)
                return True
    return False


def is_captioned(participant: rtc.Participant) -> bool:
    """Humans (and bots that are not agents) get captions; agents do not."""
    return participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


class TrackCaptioner:
    """One microphone track, from audio frames to published captions."""

    def __init__(
        self,
        *,
        participant: rtc.RemoteParticipant,
        track: rtc.RemoteAudioTrack,
        engine: InferenceEngine,
        options: StreamingOptions,
        meeting_start: float,
        publisher: TrackPublisher,
        on_final: FinalSink | None = None,
        shared_mic: SharedMicrophone | None = None,
    ) -> None:
        self.participant = participant
        self.track = track
        self.track_sid = track.sid
        self.speaker = speaker_of(participant)
        self.meeting_start = meeting_start
        self._publisher = publisher
        self._on_final = on_final
        self.shared_mic = shared_mic
        self._epoch = secrets.token_hex(3)
        self.timeline = StreamTimeline()
        self.transcriber = StreamingTranscriber(engine, options, stream_id=track.sid)
        self._configured_language = options.language
        self._asked_language: str | None = None
        self._follow_language(participant)
        self._audio = track_audio(track)
        self.finals = 0
        self._interim_shown = ""
        metrics.stream_opened()
        self._reader = spawn(self._read(), name=f"greffier-read-{track.sid}", logger=logger)
        self._writer = spawn(self._write(), name=f"greffier-write-{track.sid}", logger=logger)

    def meeting_now(self) -> float:
        return time.time() - self.meeting_start

    async def _read(self) -> None:
        async for event in self._audio:
            frame = event.frame
            samples = pcm16_to_float32(frame.data)
            self.timeline.on_audio(samples.size / SAMPLE_RATE, self.meeting_now())
            self.transcriber.push_audio(samples)
            if self.shared_mic is not None:
                self.shared_mic.push(samples)

    async def _write(self) -> None:
        async for event in self.transcriber:
            if event.type not in (TranscriptEventType.INTERIM, TranscriptEventType.FINAL):
                continue
            if (
                self.shared_mic is not None
                and event.words
                and event.type is TranscriptEventType.FINAL
            ):
                await self.shared_mic.catch_up(event.words[-1].end)
            for update in self._to_updates(event):
                self._measure(update)
                if update.final:
                    logger.debug(
                        "final %s: ends %.2f s before now",
                        update.segment_id,
                        self.meeting_now() - update.end,
                    )
                if update.final and self._on_final is not None and update.text:
                    try:
                        await self._on_final(update)
                    except Exception as e:  # noqa: BLE001 - the caption still goes out
                        # The class only: a library's message could quote the text.
                        logger.error(
                            "keeping final %s failed (%s)", update.segment_id, type(e).__name__
                        )
                if update.final:
                    self.finals += 1
                self._publisher.enqueue(update)

    def _measure(self, update: CaptionUpdate) -> None:
        """Caption latencies and retractions, for the metrics (``greffier.core.metrics``)."""
        now = self.meeting_now()
        if update.final and update.text:
            metrics.caption_latency("final", now - update.end)
        elif update.final:
            metrics.retracted_segment()
        elif update.segment_id != self._interim_shown:
            self._interim_shown = update.segment_id
            metrics.caption_latency("first_interim", now - update.start)

    def _to_updates(self, event: TranscriptEvent) -> list[CaptionUpdate]:
        """The event as captions; a shared microphone's final is split by speaker."""
        labels = None
        if self.shared_mic is not None and event.words:
            labels = self.shared_mic.label_words(event.words)
        return caption_updates(
            event,
            segment_id=f"{self.track_sid}-{self._epoch}-{event.segment_index}",
            speaker=self.speaker,
            track_sid=self.track_sid,
            timeline=self.timeline,
            meeting_started_at=self.meeting_start,
            labels=labels,
        )

    def flush(self) -> None:
        """Finalise what is being said now (mute)."""
        self.transcriber.flush()

    def update_participant(self, participant: rtc.RemoteParticipant) -> None:
        """Name or attributes changed."""
        self.participant = participant
        self.speaker = speaker_of(participant)
        self._follow_language(participant)

    def _follow_language(self, participant: rtc.RemoteParticipant) -> None:
        """The participant's language attribute, when set, else the configured language
        (``GREFFIER_ASR__LANGUAGE``); applied only when the attribute changes, so another
        attribute's change neither drops the configured language nor resets detection."""
        asked = participant_language(dict(participant.attributes))
        if asked == self._asked_language:
            return
        self._asked_language = asked
        self.transcriber.set_language(asked or self._configured_language)

    async def aclose(self) -> None:
        """Stop reading, finalise the last utterance and publish it."""
        metrics.stream_closed()
        await self._audio.aclose()
        self._reader.cancel()
        await asyncio.wait([self._reader])  # a failure of either task is logged (spawn)
        await self.transcriber.aclose()
        await asyncio.wait([self._writer])
        if self.shared_mic is not None:
            await self.shared_mic.aclose()


def caption_updates(
    event: TranscriptEvent,
    *,
    segment_id: str,
    speaker: Speaker,
    track_sid: str,
    timeline: StreamTimeline,
    meeting_started_at: float,
    labels: Sequence[str] | None = None,
) -> list[CaptionUpdate]:
    """A transcriber event as caption updates, in meeting time.

    With ``labels`` (a shared microphone: the speaker of each word), an interim is shown under
    its last word's speaker and a final is split where the speaker changes
    (:func:`~greffier.diarization.assign.speaker_parts`): its first part keeps ``segment_id``,
    so the interims shown under that id end with a final, and the next parts follow as
    ``<id>.1``, ``<id>.2``...
    """
    final = event.type is TranscriptEventType.FINAL
    if labels is None or not event.words:
        parts = [SpeakerPart(segment_id, speaker.label, event.words)]
    elif not final:
        parts = [SpeakerPart(segment_id, labels[-1], event.words)]
    else:
        parts = speaker_parts(segment_id, event.words, labels)
    to_meeting = timeline.to_meeting
    updates = []
    for part in parts:
        words = part.words
        whole = len(words) == len(event.words)
        updates.append(
            CaptionUpdate(
                segment_id=part.segment_id,
                speaker=Speaker(speaker.identity, speaker.name, part.label),
                track_sid=track_sid,
                language=event.language,
                start=to_meeting(words[0].start if words else event.start),
                end=to_meeting(words[-1].end if words else event.end),
                text=event.text if whole else join_words(words),
                final=final,
                words=tuple(w.shifted(to_meeting(w.start) - w.start) for w in words),
                revision=event.revision,
                meeting_started_at=meeting_started_at,
            )
        )
    return updates


class RoomCaptioner:
    """Every captioned track of one room."""

    def __init__(
        self,
        room: rtc.Room,
        engine: InferenceEngine,
        options: StreamingOptions,
        *,
        meeting_start: float,
        on_final: FinalSink | None = None,
        on_closed: Callable[[], Awaitable[object]] | None = None,
        on_humans_changed: Callable[[int], None] | None = None,
        diarization: DiarizationSettings | None = None,
        recordings: Path | None = None,
    ) -> None:
        self.room = room
        self.engine = engine
        self.options = options
        self.meeting_start = meeting_start
        self._on_final = on_final
        self._on_closed = on_closed
        self._on_humans_changed = on_humans_changed
        self._diarization = diarization
        self._recordings = recordings
        self.tracks: dict[str, TrackCaptioner] = {}
        self.shared_tracks: list[TrackCaptioner] = []
        """Tracks diarized live (shared microphones), kept for the end-of-meeting pass."""
        self._publishers: dict[str, TrackPublisher] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Caption the tracks already subscribed and follow the room's events."""
        room = self.room
        room.on("track_subscribed", self._on_track_subscribed)
        room.on("track_unsubscribed", self._on_track_unsubscribed)
        room.on("track_muted", self._on_track_muted)
        room.on("participant_attributes_changed", self._on_attributes_changed)
        room.on("participant_connected", lambda p: self._humans_changed())
        room.on("participant_disconnected", self._on_participant_disconnected)
        for participant in room.remote_participants.values():
            for pub in participant.track_publications.values():
                if pub.track is not None and pub.subscribed:
                    self._on_track_subscribed(pub.track, pub, participant)

    def humans(self) -> int:
        """Participants in the room that get captions."""
        return sum(1 for p in self.room.remote_participants.values() if is_captioned(p))

    def _humans_changed(self) -> None:
        if self._on_humans_changed is not None:
            self._on_humans_changed(self.humans())

    def _on_track_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if not isinstance(track, rtc.RemoteAudioTrack) or track.sid in self.tracks:
            return
        if publication.source not in _CAPTIONED_SOURCES or not is_captioned(participant):
            return
        publisher = self._publishers.get(track.sid) or TrackPublisher(
            self.room, track_sid=track.sid
        )
        self._publishers[track.sid] = publisher
        shared = self._shared_microphone(participant, track.sid)
        captioner = TrackCaptioner(
            participant=participant,
            track=track,
            engine=self.engine,
            options=self.options,
            meeting_start=self.meeting_start,
            publisher=publisher,
            on_final=self._on_final,
            shared_mic=shared,
        )
        self.tracks[track.sid] = captioner
        if shared is not None:
            self.shared_tracks.append(captioner)
        logger.info("captioning track %s (%d tracks in the room)", track.sid, len(self.tracks))

    def _shared_microphone(
        self, participant: rtc.RemoteParticipant, track_sid: str
    ) -> SharedMicrophone | None:
        settings = self._diarization
        asked = participant.attributes.get(PARTICIPANT_SHARED_MIC_ATTRIBUTE, "") == "true"
        if settings is None or self._recordings is None or not (settings.enabled or asked):
            return None
        shared = SharedMicrophone(settings, self._recordings / f"{track_sid}.pcm")
        # a failure is logged; the track is then captioned without speaker labels
        spawn(
            shared.start(),
            name=f"greffier-diarization-start-{track_sid}",
            logger=logger,
            tasks=self._closing,
        )
        return shared

    def _close_track(self, track_sid: str) -> None:
        captioner = self.tracks.pop(track_sid, None)
        if captioner is None:
            return
        publisher = self._publishers.pop(track_sid, None)

        async def close() -> None:
            await captioner.aclose()
            if publisher is not None:
                await publisher.aclose()
            logger.info("track %s closed after %d finals", track_sid, captioner.finals)

        spawn(close(), name=f"greffier-close-{track_sid}", logger=logger, tasks=self._closing)

    def _on_track_unsubscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        self._close_track(track.sid)

    def _on_track_muted(
        self, participant: rtc.Participant, publication: rtc.TrackPublication
    ) -> None:
        captioner = self.tracks.get(publication.sid)
        if captioner is not None:
            captioner.flush()

    def _on_attributes_changed(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        for captioner in self.tracks.values():
            if captioner.participant.identity == participant.identity and isinstance(
                participant, rtc.RemoteParticipant
            ):
                captioner.update_participant(participant)

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        for sid, captioner in list(self.tracks.items()):
            if captioner.participant.identity == participant.identity:
                self._close_track(sid)
        self._humans_changed()

    async def aclose(self) -> None:
        """Finalise and publish every track's last words, then wait for ``on_closed`` (the
        recorder's flush: those finals stored)."""
        for sid in list(self.tracks):
            self._close_track(sid)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._on_closed is not None:
            await self._on_closed()
