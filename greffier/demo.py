"""``greffier demo``: real captions of a real recording through a local LiveKit room.

Starts the LiveKit server (unless one answers) and a worker, creates a room, has a bot
participant publish the recording at real-time pace, prints captions as they arrive (the
interim line rewritten in place, finals kept) and ends with a summary: captions received, WER of
the finals when a reference transcript exists, and caption latency.

The default recording is the 30 s two-speaker ``sample.wav`` that the pyannote.audio wheel
ships, so the demo works on any machine where greffier's dependencies are installed. It is a
phone call of two people on one track: the demo marks that track as a shared microphone, so
the captions say which of the two voices speaks ("Phone call (1)", "Phone call (2)").
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from greffier.core.audio import SAMPLE_RATE, read_audio
from greffier.core.config import Settings
from greffier.core.errors import AudioFormatError, GreffierError
from greffier.core.text import read_reference, word_error_rate
from greffier.livekit import server as lk_server
from greffier.livekit.worker_process import WorkerProcess
from greffier.subtitles.control import MINUTES_TOPIC
from greffier.subtitles.protocol import PARTICIPANT_SHARED_MIC_ATTRIBUTE


def default_recording() -> Path:
    """pyannote.audio's bundled 30 s two-speaker sample."""
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        raise GreffierError(
            "the default demo recording ships with pyannote.audio, which is not installed",
            hint="pip install 'greffier[diarization]', or give an audio file: greffier demo FILE",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "sample" / "sample.wav"
    if not path.is_file():
        raise GreffierError(f"{path} is missing", hint="give an audio file: greffier demo FILE")
    return path


def find_reference(audio: Path) -> Path | None:
    """A reference transcript next to the audio: ``x.txt`` or ``x.stm`` beside it, or
    ``../ref/x.txt``."""
    for candidate in (
        audio.with_suffix(".txt"),
        audio.with_suffix(".stm"),
        audio.parent.parent / "ref" / f"{audio.stem}.txt",
    ):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class _Line:
    """The console: finals printed once, the current interim rewritten in place."""

    tty: bool
    interim_shown: bool = False

    def interim(self, text: str) -> None:
        if not self.tty:
            return
        width = 110
        sys.stdout.write("\r\033[K" + ("… " + text)[-width:])
        sys.stdout.flush()
        self.interim_shown = True

    def final(self, text: str) -> None:
        if self.tty and self.interim_shown:
            sys.stdout.write("\r\033[K")
        self.interim_shown = False
        print(text, flush=True)


def _fmt(t: float) -> str:
    return f"{int(t // 60):02d}:{t % 60:04.1f}"


async def run_demo(
    settings: Settings,
    audio_path: Path | None,
    *,
    reference: Path | None = None,
    worker_log: Path | None = None,
    shared_microphone: bool | None = None,
) -> int:
    """Run the demo; returns the exit code. ``shared_microphone`` (default: on for the default
    two-speaker recording, off for a file given) diarizes the published track."""
    from greffier.livekit.client import (
        CaptionCollector,
        ReceivedCaption,
        connect,
        dispatch_agent,
        publish_audio,
    )

    path = audio_path or default_recording()
    if shared_microphone is None:
        shared_microphone = audio_path is None
    if not path.is_file():
        raise AudioFormatError(f"no such audio file: {path}")
    audio = read_audio(path)
    if audio.size == 0:
        raise AudioFormatError(f"{path.name} holds no audio")
    ref_path = reference or find_reference(path)
    duration = audio.size / SAMPLE_RATE
    print(
        f"greffier demo: {path.name} ({duration:.1f} s), model {settings.asr.model}, "
        f"language {settings.asr.language}"
    )

    cfg = lk_server.ServerConfig(cache_dir=settings.cache_dir)
    local = settings.livekit.url == cfg.url
    started_server = False
    if local:
        print("LiveKit server: ", end="", flush=True)
        started_server = lk_server.start(cfg)
        print("started" if started_server else "already running", f"on {cfg.url}")
    agent_name = f"greffier-demo-{uuid.uuid4().hex[:6]}"
    room_name = f"demo-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(
        {
            "GREFFIER_AGENT__NAME": agent_name,
            "GREFFIER_ASR__MODEL": settings.asr.model,
            "GREFFIER_ASR__LANGUAGE": settings.asr.language,
        },
        log_path=worker_log,
    )
    print("Worker: loading the model and registering... ", end="", flush=True)
    t_worker = time.monotonic()
    try:
        worker.start()
        print(f"ready in {time.monotonic() - t_worker:.1f} s")
        line = _Line(tty=sys.stdout.isatty())
        speaker_name = "Phone call" if shared_microphone else "Demo speaker"

        def show(c: ReceivedCaption) -> None:
            if c.via != "data" or c.message is None:
                return
            who = c.message.speaker.name
            if c.final:
                if c.text:
                    line.final(f"[{_fmt(c.message.start)}] {who}: {c.text}")
            else:
                line.interim(f"{who}: {c.text}")

        listener = await connect(
            settings.livekit, identity="demo-listener", room=room_name, name="Listener"
        )
        collector = CaptionCollector(listener, on_caption=show)
        await dispatch_agent(settings.livekit, room_name, agent_name)
        attributes = {PARTICIPANT_SHARED_MIC_ATTRIBUTE: "true"} if shared_microphone else None
        speaker = await connect(
            settings.livekit,
            identity="demo-speaker",
            room=room_name,
            name=speaker_name,
            auto_subscribe=False,
            attributes=attributes,
        )
        await _wait_for_agent(settings, room_name)
        shared = ", a shared microphone: voices told apart" if shared_microphone else ""
        print(
            f"Publishing {path.name} as {speaker_name!r} in room {room_name} "
            f"(real time, {duration:.0f} s{shared})\n"
        )
        await publish_audio(speaker, audio, SAMPLE_RATE, unpublish=False)
        await _wait_quiet(collector, quiet_s=3.0, timeout_s=20.0)
        minutes = await _end_meeting(settings, listener, room_name) if shared_microphone else None
        await speaker.disconnect()
        await listener.disconnect()
    finally:
        worker.stop()
        if started_server:
            lk_server.stop(cfg)
    _summary(collector, ref_path)
    if minutes is not None:
        _print_minutes(minutes)
    return 0 if collector.finals() else 1


async def _end_meeting(
    settings: Settings, listener: object, room: str, timeout_s: float = 60.0
) -> Path | None:
    """Ask the captioner to end the meeting (a request signed with the API secret) and wait for
    its minutes, in which the whole track was diarized again: the JSON minutes' path, or None."""
    from livekit import rtc

    from greffier.livekit.client import request_control

    assert isinstance(listener, rtc.Room)
    announced: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == MINUTES_TOPIC and not announced.done():
            with contextlib.suppress(ValueError):
                announced.set_result(json.loads(packet.data))

    listener.on("data_received", on_data)
    print("\nEnding the meeting: the captioner writes the minutes (whole track diarized again)")
    await request_control(settings.livekit, room, "end")
    try:
        body = await asyncio.wait_for(announced, timeout_s)
    except TimeoutError:
        print("  no minutes announced in time (see the worker's log)")
        return None
    folder = settings.data_dir / "minutes" / str(body.get("meeting_id", ""))
    files = [str(f) for f in body.get("files", []) if isinstance(f, str)]  # type: ignore[attr-defined]
    json_files = [folder / f for f in files if f.endswith(".json")]
    return json_files[0] if json_files and json_files[0].is_file() else None


def _print_minutes(path: Path) -> None:
    from greffier.subtitles.formats import minutes_from_json

    minutes = minutes_from_json(path.read_bytes())
    print(f"\nMinutes ({path.parent}): {', '.join(minutes.participants)}")
    for seg in minutes.segments:
        print(f"  [{_fmt(seg.start)}] {seg.speaker.display}: {seg.text}")


async def _wait_for_agent(settings: Settings, room: str, timeout_s: float = 30.0) -> None:
    from greffier.livekit.client import list_participants

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(
            p.identity.startswith(settings.agent.identity_prefix)
            for p in await list_participants(settings.livekit, room)
        ):
            return
        await asyncio.sleep(0.2)
    raise GreffierError("the captioner did not join the room", hint="see the worker's log")


async def _wait_quiet(collector: object, *, quiet_s: float, timeout_s: float) -> None:
    from greffier.livekit.client import CaptionCollector

    assert isinstance(collector, CaptionCollector)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = collector.captions[-1].received_at if collector.captions else 0.0
        if collector.captions and time.time() - last > quiet_s:
            return
        await asyncio.sleep(0.2)


def _summary(collector: object, ref_path: Path | None) -> None:
    from greffier.livekit.client import CaptionCollector

    assert isinstance(collector, CaptionCollector)
    data = collector.via("data")
    finals = [c for c in data if c.final and c.text]
    interims = [c for c in data if not c.final]
    print("\nSummary")
    print(
        f"  captions received: {len(finals)} finals, {len(interims)} interim updates "
        f"(lk.transcription streams: {len(collector.via('text_stream'))}, "
        f"legacy transcriptions: {len(collector.via('legacy'))}, "
        f"greffier.captions messages: {len(data)})"
    )
    speakers = sorted({c.message.speaker.name for c in finals if c.message})
    print(f"  speakers: {', '.join(speakers) if speakers else '-'}")
    if ref_path is not None:
        hyp = " ".join(c.text for c in finals)
        result = word_error_rate([read_reference(ref_path)], [hyp])
        print(
            f"  WER of the finals: {100 * result.wer:.1f} % ({result.errors} errors / "
            f"{result.reference_words} reference words, {ref_path.name})"
        )
    else:
        print("  WER: no reference transcript for this recording")
    lat = [
        c.received_at - (c.message.meeting_started_at + c.message.end) for c in finals if c.message
    ]
    first: dict[str, float] = {}
    for c in data:
        if c.message is not None and c.segment_id not in first:
            first[c.segment_id] = c.received_at - (c.message.meeting_started_at + c.message.start)
    if lat:
        lat.sort()
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        print(
            f"  caption latency: final p50 {statistics.median(lat):.2f} s, p95 {p95:.2f} s "
            f"after the end of the words; first interim p50 "
            f"{statistics.median(first.values()):.2f} s after the segment began"
        )
