"""LiveKit client side (the one adapter over ``livekit.rtc`` / ``livekit.api`` for clients).

Explicit agent dispatch, control requests, a participant that publishes a recording at
real-time pace, and a collector of the captions a participant receives in all three forms.
Used by the demo, the integration tests and the benchmarks; tokens are signed by
:mod:`greffier.livekit.tokens`; the agent worker has its own side in ``greffier.agents``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import api, rtc

from greffier.core.audio import FloatArray, float32_to_pcm16
from greffier.core.config import LiveKitSettings
from greffier.core.errors import ServerUnreachableError
from greffier.core.log import get_logger
from greffier.livekit.tokens import make_token
from greffier.subtitles.protocol import (
    ATTR_FINAL,
    ATTR_SEGMENT_ID,
    ATTR_TRACK_ID,
    TOPIC_CAPTIONS,
    TOPIC_TRANSCRIPTION,
    CaptionMessage,
)

logger = get_logger("livekit.client")


def server_api(lk: LiveKitSettings) -> api.LiveKitAPI:
    """A server API client (close it with ``await client.aclose()``)."""
    return api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret.get_secret_value())


async def dispatch_agent(lk: LiveKitSettings, room: str, agent_name: str) -> str:
    """Ask the server to send agent ``agent_name`` into ``room``; returns the dispatch id."""
    client = server_api(lk)
    try:
        dispatch = await client.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room)
        )
        return str(dispatch.id)
    except (api.TwirpError, OSError) as e:
        raise ServerUnreachableError(f"dispatch to room failed: {e}") from e
    finally:
        await client.aclose()


async def request_control(lk: LiveKitSettings, room: str, action: str) -> None:
    """Send the room's captioner a ``greffier.control`` request (``stop``, ``end``,
    ``minutes``) signed with the API secret, through the server API."""
    from greffier.subtitles.control import CONTROL_TOPIC, signed_request

    client = server_api(lk)
    try:
        await client.room.send_data(
            api.SendDataRequest(
                room=room,
                data=signed_request(action, room, lk.api_secret.get_secret_value()),
                kind=api.DataPacket.Kind.RELIABLE,
                topic=CONTROL_TOPIC,
            )
        )
    except (api.TwirpError, OSError) as e:
        raise ServerUnreachableError(f"control request failed: {e}") from e
    finally:
        await client.aclose()


async def list_participants(lk: LiveKitSettings, room: str) -> list[Any]:
    """The server's view of a room's participants (hidden ones included)."""
    client = server_api(lk)
    try:
        resp = await client.room.list_participants(api.ListParticipantsRequest(room=room))
        return list(resp.participants)
    finally:
        await client.aclose()


async def connect(
    lk: LiveKitSettings,
    *,
    identity: str,
    room: str,
    name: str = "",
    attributes: dict[str, str] | None = None,
    auto_subscribe: bool = True,
    timeout_s: float = 15.0,
) -> rtc.Room:
    """Join ``room`` as a participant; raises ServerUnreachableError when that fails."""
    token = make_token(lk, identity=identity, room=room, name=name, attributes=attributes)
    r = rtc.Room()
    try:
        await asyncio.wait_for(
            r.connect(lk.url, token, rtc.RoomOptions(auto_subscribe=auto_subscribe)), timeout_s
        )
    except (rtc.ConnectError, TimeoutError, OSError) as e:
        raise ServerUnreachableError(
            f"cannot join a room on {lk.url}: {e}",
            hint="start the server with `greffier livekit-server start`",
        ) from e
    return r


@dataclass
class PublishedAudio:
    """When a published recording went out (wall clock, ``time.time()``)."""

    started_at: float = 0.0
    """Wall time at which sample 0 was handed to the track."""
    ended_at: float = 0.0
    sample_rate: int = 48_000

    def wall_time(self, t: float) -> float:
        """Wall time at which audio time ``t`` (seconds into the recording) went out."""
        return self.started_at + t


async def publish_audio(
    room: rtc.Room,
    samples: FloatArray,
    sample_rate: int,
    *,
    num_channels: int = 1,
    track_name: str = "microphone",
    frame_ms: int = 20,
    realtime: bool = True,
    published: PublishedAudio | None = None,
    unpublish: bool = True,
) -> PublishedAudio:
    """Publish float32 audio (interleaved when ``num_channels`` > 1) as a microphone track.

    Frames are paced on the wall clock; ``published`` records when it started and ended.
    """
    info = published or PublishedAudio(sample_rate=sample_rate)
    info.sample_rate = sample_rate
    source = rtc.AudioSource(sample_rate, num_channels, queue_size_ms=max(100, 2 * frame_ms))
    track = rtc.LocalAudioTrack.create_audio_track(track_name, source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    publication = await room.local_participant.publish_track(track, options)
    per_frame = sample_rate * frame_ms // 1000
    pcm = float32_to_pcm16(np.asarray(samples, dtype=np.float32))
    total_frames = pcm.size // num_channels
    await asyncio.sleep(0.3)  # let the subscription settle before the first word
    start = time.time()
    info.started_at = start
    for i in range(0, total_frames, per_frame):
        chunk = pcm[i * num_channels : (i + per_frame) * num_channels]
        n = chunk.size // num_channels
        if n < per_frame:
            chunk = np.concatenate([chunk, np.zeros((per_frame - n) * num_channels, np.int16)])
        frame = rtc.AudioFrame(chunk.tobytes(), sample_rate, num_channels, per_frame)
        if realtime:
            delay = start + i / sample_rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await source.capture_frame(frame)
    await source.wait_for_playout()
    info.ended_at = time.time()
    if unpublish:
        await room.local_participant.unpublish_track(publication.sid)
    await source.aclose()
    return info


@dataclass(frozen=True, slots=True)
class ReceivedCaption:
    """One caption update as a participant received it."""

    received_at: float
    """Wall time (``time.time()``)."""
    via: str
    """``text_stream``, ``legacy`` or ``data``."""
    segment_id: str
    speaker_identity: str
    final: bool
    text: str
    track_sid: str = ""
    message: CaptionMessage | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    event_segments: int = 1
    """Segments in the legacy event that carried this one (Meet drops events of several)."""


class CaptionCollector:
    """Collects what a participant receives on the three caption channels."""

    def __init__(
        self, room: rtc.Room, *, on_caption: Callable[[ReceivedCaption], None] | None = None
    ) -> None:
        self.room = room
        self.captions: list[ReceivedCaption] = []
        self.malformed = 0
        self._on_caption = on_caption
        self._tasks: set[asyncio.Task[None]] = set()
        room.register_text_stream_handler(TOPIC_TRANSCRIPTION, self._on_text_stream)
        room.on("transcription_received", self._on_legacy)
        room.on("data_received", self._on_data)

    def _add(self, caption: ReceivedCaption) -> None:
        self.captions.append(caption)
        if self._on_caption is not None:
            self._on_caption(caption)

    def _on_text_stream(self, reader: rtc.TextStreamReader, participant_identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            attrs = dict(reader.info.attributes or {})
            self._add(
                ReceivedCaption(
                    received_at=time.time(),
                    via="text_stream",
                    segment_id=attrs.get(ATTR_SEGMENT_ID, ""),
                    speaker_identity=participant_identity,
                    final=attrs.get(ATTR_FINAL) == "true",
                    text=text,
                    track_sid=attrs.get(ATTR_TRACK_ID, ""),
                    attributes=attrs,
                )
            )

        task = asyncio.create_task(read())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_legacy(
        self,
        segments: list[rtc.TranscriptionSegment],
        participant: rtc.Participant | None,
        publication: rtc.TrackPublication | None,
    ) -> None:
        now = time.time()
        for seg in segments:
            self._add(
                ReceivedCaption(
                    received_at=now,
                    via="legacy",
                    segment_id=seg.id,
                    speaker_identity=participant.identity if participant else "",
                    final=seg.final,
                    text=seg.text,
                    track_sid=publication.sid if publication else "",
                    event_segments=len(segments),
                )
            )

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic != TOPIC_CAPTIONS:
            return
        try:
            msg = CaptionMessage.parse(packet.data)
        except ValueError:
            self.malformed += 1
            return
        self._add(
            ReceivedCaption(
                received_at=time.time(),
                via="data",
                segment_id=msg.segment_id,
                speaker_identity=msg.speaker.identity,
                final=msg.final,
                text=msg.text,
                track_sid=msg.track_sid,
                message=msg,
            )
        )

    def via(self, channel: str) -> list[ReceivedCaption]:
        """Captions received on one channel, in arrival order."""
        return [c for c in self.captions if c.via == channel]

    def finals(self, channel: str = "data", speaker: str | None = None) -> list[ReceivedCaption]:
        """Final captions (non-empty), optionally of one speaker."""
        return [
            c
            for c in self.via(channel)
            if c.final and c.text and (speaker is None or c.speaker_identity == speaker)
        ]

    def transcript(self, speaker: str, channel: str = "data") -> str:
        """The finals of one speaker joined, in arrival order."""
        return " ".join(c.text for c in self.finals(channel, speaker))

    def dump(self) -> str:
        """All captions as JSON lines (for debugging a failing test)."""
        return "\n".join(
            json.dumps(
                {
                    "t": c.received_at,
                    "via": c.via,
                    "seg": c.segment_id,
                    "who": c.speaker_identity,
                    "final": c.final,
                    "text": c.text,
                }
            )
            for c in self.captions
        )
