"""Live captions end to end: real LiveKit server, real worker, real Whisper, real recordings."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from greffier.core.audio import SAMPLE_RATE, resample
from greffier.core.text import word_error_rate
from greffier.livekit.client import (
    CaptionCollector,
    connect,
    dispatch_agent,
    publish_audio,
)
from tests.integration.rooms import (
    Speaker,
    caption_session,
    captioners,
    clip_audio,
    clip_text,
    room_name,
    wait_for,
    wait_quiet,
)

pytestmark = pytest.mark.integration

ALICE_CLIPS = ("lhotse_librispeech_2412-153948-0000", "ljspeech_LJ001-0009")
BOB_CLIPS = ("ljspeech_LJ001-0001", "ps_librivox_sense_sensibility_01-0920")


async def test_two_speakers_at_once_are_captioned_and_attributed(livekit, worker, agent_name,
                                                                 clips) -> None:
    alice = Speaker("alice", "Alice Martin", clip_audio(clips, *ALICE_CLIPS))
    bob = Speaker("bob", "Bob Durand", clip_audio(clips, *BOB_CLIPS))
    got = await caption_session(livekit, agent_name, [alice, bob])

    for speaker, ids in ((alice, ALICE_CLIPS), (bob, BOB_CLIPS)):
        for channel in ("text_stream", "legacy", "data"):
            assert got.finals(channel, speaker.identity), f"no {channel} finals for {speaker.name}"
        finals = got.finals("data", speaker.identity)
        assert {c.message.speaker.name for c in finals} == {speaker.name}
        wer = word_error_rate([clip_text(clips, *ids)], [got.transcript(speaker.identity)])
        assert wer.wer <= 0.15, f"{speaker.name}: WER {wer.wer:.1%}\n{got.dump()}"
        # interims come before the final of each segment (of 1.5 s of words or more)
        data = [c for c in got.via("data") if c.speaker_identity == speaker.identity]
        for final in finals:
            if final.message.end - final.message.start < 1.5:
                continue
            before = [c for c in data if c.segment_id == final.segment_id and not c.final
                      and c.received_at <= final.received_at]
            assert before, f"segment {final.segment_id} had no interim before its final\n" + (
                got.dump()
            )
            after = [c for c in data if c.segment_id == final.segment_id and not c.final
                     and c.received_at > final.received_at]
            assert not after, "an interim arrived after its segment's final"

    # the text streams are sent on behalf of the speaker and carry LiveKit's attributes
    streams = got.via("text_stream")
    assert {c.speaker_identity for c in streams} == {"alice", "bob"}
    assert all(c.attributes.get("lk.transcribed_track_id") for c in streams)
    assert got.malformed == 0


async def test_a_participant_who_leaves_and_rejoins_is_captioned_again(livekit, worker,
                                                                       agent_name, clips) -> None:
    room = room_name()
    listener = await connect(livekit, identity="listener", room=room)
    got = CaptionCollector(listener)
    await dispatch_agent(livekit, room, agent_name)
    assert await wait_for(lambda: _captioned(livekit, room))
    first, second = "ljspeech_LJ001-0004", "ljspeech_LJ001-0011"
    for clip in (first, second):
        carol = await connect(livekit, identity="carol", room=room, name="Carol",
                              auto_subscribe=False)
        await publish_audio(carol, clip_audio(clips, clip), SAMPLE_RATE)
        await wait_quiet(got, quiet_s=2.5)
        await carol.disconnect()
        await asyncio.sleep(1.0)
    await listener.disconnect()
    finals = got.finals("data", "carol")
    tracks = {c.track_sid for c in finals}
    assert len(tracks) == 2, "both sessions of the participant were captioned"
    wer = word_error_rate([clip_text(clips, first, second)], [got.transcript("carol")])
    assert wer.wer <= 0.15, got.dump()


async def _push(source, samples: np.ndarray) -> None:
    """Capture mono float32 audio into ``source`` at real-time pace (20 ms frames)."""
    from livekit import rtc

    from greffier.core.audio import float32_to_pcm16

    pcm = float32_to_pcm16(samples)
    per = SAMPLE_RATE // 50
    start = time.monotonic()
    for i in range(0, pcm.size - per + 1, per):
        delay = start + i / SAMPLE_RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await source.capture_frame(rtc.AudioFrame(pcm[i:i + per].tobytes(), SAMPLE_RATE, 1, per))
    await source.wait_for_playout()


async def test_mute_unmute_and_republish_are_captioned_on_the_meeting_clock(
        livekit, worker, agent_name, clips) -> None:
    from livekit import rtc

    room = room_name()
    listener = await connect(livekit, identity="listener", room=room)
    got = CaptionCollector(listener)
    await dispatch_agent(livekit, room, agent_name)
    assert await wait_for(lambda: _captioned(livekit, room))
    dave = await connect(livekit, identity="dave", room=room, name="Dave", auto_subscribe=False)
    source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
    pub = await dave.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    await asyncio.sleep(0.3)
    before, after, again = "ljspeech_LJ001-0004", "ljspeech_LJ001-0011", "ljspeech_LJ001-0009"
    gap = np.zeros(SAMPLE_RATE, np.float32)
    await _push(source, np.concatenate([clip_audio(clips, before), gap]))
    await wait_quiet(got, quiet_s=2.0)
    track.mute()  # muted: no audio at all for a while
    muted_at = time.time()
    await asyncio.sleep(4.0)
    track.unmute()
    unmuted_at = time.time()
    await _push(source, np.concatenate([clip_audio(clips, after), gap]))
    await wait_quiet(got, quiet_s=2.0)
    await dave.local_participant.unpublish_track(pub.sid)
    await source.aclose()
    await asyncio.sleep(1.0)
    await publish_audio(dave, np.concatenate([clip_audio(clips, again), gap]), SAMPLE_RATE)
    await wait_quiet(got, quiet_s=2.5)
    await dave.disconnect()
    await listener.disconnect()

    finals = got.finals("data", "dave")
    assert len({c.track_sid for c in finals}) == 2, got.dump()  # first track, then the new one
    wer = word_error_rate([clip_text(clips, before, after, again)], [got.transcript("dave")])
    assert wer.wer <= 0.15, got.dump()
    # meeting times follow the wall clock across the mute: nothing of the second clip is placed
    # in the muted stretch, nothing of the first after it
    for c in finals:
        m = c.message
        assert m is not None
        start, end = m.meeting_started_at + m.start, m.meeting_started_at + m.end
        assert end <= muted_at + 1.0 or start >= unmuted_at - 1.0, (start - muted_at,
                                                                   end - unmuted_at)


async def _captioned(livekit, room: str) -> bool:
    return bool(await captioners(livekit, room))


async def test_a_second_dispatch_leaves_one_captioner(livekit, worker, agent_name) -> None:
    room = room_name()
    listener = await connect(livekit, identity="listener", room=room)
    await dispatch_agent(livekit, room, agent_name)
    assert await wait_for(lambda: _captioned(livekit, room))
    await dispatch_agent(livekit, room, agent_name)
    await asyncio.gather(dispatch_agent(livekit, room, agent_name),
                         dispatch_agent(livekit, room, agent_name))
    await asyncio.sleep(6.0)
    assert len(await captioners(livekit, room)) == 1
    await listener.disconnect()


async def test_silence_and_noise_get_no_captions(livekit, worker, agent_name) -> None:
    rng = np.random.default_rng(7)
    quiet = np.zeros(8 * SAMPLE_RATE, np.float32)
    hiss = (0.03 * rng.standard_normal(10 * SAMPLE_RATE)).astype(np.float32)
    hum = (0.1 * np.sin(2 * np.pi * 100 * np.arange(6 * SAMPLE_RATE) / SAMPLE_RATE)).astype(
        np.float32
    )
    got = await caption_session(livekit, agent_name, [
        Speaker("mute", "Silent", quiet), Speaker("noisy", "Noisy", np.concatenate([hiss, hum])),
    ])
    assert not [c for c in got.captions if c.text], got.dump()


async def test_8k_44k_and_stereo_audio_are_captioned(livekit, worker, agent_name, clips) -> None:
    ids = ("ljspeech_LJ001-0006", "ljspeech_LJ001-0013")
    audio = clip_audio(clips, *ids)
    at_8k = resample(audio, SAMPLE_RATE, 8_000)
    at_44k = resample(audio, SAMPLE_RATE, 44_100)
    stereo_44k = np.stack([at_44k, at_44k * 0.5], axis=1).reshape(-1)
    got = await caption_session(livekit, agent_name, [
        Speaker("phone", "Phone bridge", at_8k, sample_rate=8_000),
        Speaker("studio", "Studio", stereo_44k, sample_rate=44_100, channels=2),
    ])
    for who in ("phone", "studio"):
        wer = word_error_rate([clip_text(clips, *ids)], [got.transcript(who)])
        assert wer.wer <= 0.2, f"{who}: {wer.wer:.1%}\n{got.dump()}"


def test_a_worker_without_a_server_says_so_and_exits_non_zero(tmp_path) -> None:
    env = {**os.environ, "GREFFIER_LIVEKIT__URL": "ws://127.0.0.1:9",
           "GREFFIER_AGENT__CONNECT_TIMEOUT_S": "2"}
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "greffier", "worker"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "no LiveKit server answers at ws://127.0.0.1:9" in out.stderr
    assert time.monotonic() - t < 30


def test_a_missing_model_is_a_clear_error(tmp_path) -> None:
    env = {**os.environ, "GREFFIER_ASR__MODEL": str(tmp_path / "no-such-model")}
    out = subprocess.run([sys.executable, "-m", "greffier", "worker"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "Traceback" not in out.stderr
