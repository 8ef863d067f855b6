"""Faults a deployment survives, each bounded, counted against the real server and worker.

    python -m benchmarks.reliability            # long forms, all scenarios but the soak
    python -m benchmarks.reliability --short    # the CI forms (what tests/integration runs)
    python -m benchmarks.reliability --only soak   # 10 rooms x 2 speakers for 5 minutes

Scenarios (each returns its counts; the script writes ``results/reliability.json`` and ``.md``):

- ``join_leave``: one participant joins, speaks a short sentence and leaves, N times (short 10,
  long 50) in one room: captions keep coming (a final per cycle) and the worker's resident
  memory (``/proc/<pid>/status`` VmRSS) grows by less than 5 % from the second cycle on;
- ``server_restart``: a LiveKit server of its own (never the shared one) restarted
  mid-meeting: the worker re-registers, the room is dispatched again (takeover), the meeting
  record is continued and no final published before the restart is missing from the store;
- ``stalled_track``: a participant stops sending frames in the middle of speaking, without
  unpublishing: the segment is finalised while the track stays published, then speech on the
  same track is captioned again;
- ``store_down``: a PostgreSQL cluster of its own stopped mid-meeting (short 10 s, long 30 s):
  captions keep coming, finals are journaled, and all are in the store once it is back;
- ``soak`` (long only, not in CI): 10 rooms x 2 speakers for 5 minutes on one worker: finals
  never dropped, interims thinned (the engine's overload policy), memory, store errors.

Every scenario starts its own worker, except where a test passes one (``Rig``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, machine, read_manifest, write_results
from greffier.core.audio import SAMPLE_RATE, FloatArray, float32_to_pcm16
from greffier.core.config import LiveKitSettings, Settings
from greffier.core.text import word_error_rate
from greffier.livekit import server as lk_server
from greffier.livekit.client import (
    CaptionCollector,
    connect,
    dispatch_agent,
    list_participants,
    publish_audio,
)
from greffier.livekit.worker_process import WorkerProcess
from greffier.store.sql import TranscriptStore

RSS_GROWTH_LIMIT_PCT = 5.0


# -- rig -----------------------------------------------------------------------------------


@dataclass
class Rig:
    """A server, a worker registered under ``agent_name``, and the worker's data directory."""

    lk: LiveKitSettings
    agent_name: str
    worker: WorkerProcess
    data_dir: Path
    store_url: str = ""

    def store(self) -> TranscriptStore:
        return TranscriptStore(self.store_url or Settings(data_dir=self.data_dir).store_url)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(agent_name: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """A harness worker: its own name, data, metrics port; meetings end 3 s after the last
    person left; rooms never refused for load (one worker)."""
    return {
        "GREFFIER_AGENT__NAME": agent_name,
        "GREFFIER_DATA_DIR": str(data_dir),
        "GREFFIER_AGENT__LINGER_S": "3",
        "GREFFIER_AGENT__METRICS_PORT": str(free_port()),
        "GREFFIER_AGENT__LOAD_THRESHOLD": "inf",
        **extra,
    }


@contextlib.contextmanager
def own_worker(lk: LiveKitSettings, data_dir: Path, **extra: str) -> Iterator[Rig]:
    name = f"greffier-rel-{uuid.uuid4().hex[:6]}"
    env = worker_env(name, data_dir, GREFFIER_LIVEKIT__URL=lk.url, **extra)
    proc = WorkerProcess(env, log_path=data_dir / "worker.log").start()
    try:
        yield Rig(lk, name, proc, data_dir, extra.get("GREFFIER_STORE__URL", ""))
    finally:
        proc.stop()


@contextlib.contextmanager
def own_server() -> Iterator[lk_server.ServerConfig]:
    """A LiveKit server on free ports (never the shared one on 7880), stopped at the end."""
    cfg = lk_server.ServerConfig(
        port=free_port(), tcp_port=free_port(), udp_port=free_port(socket.SOCK_DGRAM)
    )
    lk_server.start(cfg)
    try:
        yield cfg
    finally:
        lk_server.stop(cfg)


class PostgresCluster:
    """A throwaway PostgreSQL cluster (Debian's binaries) that can be stopped and started."""

    def __init__(self) -> None:
        def binary(name: str) -> str:
            found = shutil.which(name) or next(
                iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
            )
            if found is None:
                raise RuntimeError(f"PostgreSQL's {name} is missing: apt-get install postgresql")
            return found

        self.initdb, self.pg_ctl = binary("initdb"), binary("pg_ctl")
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.folder = Path(tempfile.mkdtemp(prefix="greffier-rel-pg-"))
        if self.as_user:
            shutil.chown(self.folder, "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql://greffier@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> PostgresCluster:
        self._run(self.initdb, "-D", str(self.data), "-U", "greffier", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        self.start()
        return self

    def start(self) -> None:
        opts = f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.pg_ctl, "-D", str(self.data), "-o", opts, "-w", "-l",
                  str(self.folder / "log"), "start")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


# -- helpers -------------------------------------------------------------------------------


def clip(settings: Settings, clip_id: str) -> FloatArray:
    clips = {c.id: c for c in read_manifest(settings.speech_data / "manifest.tsv")}
    return clips[clip_id].audio()


def silence(seconds: float) -> FloatArray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout_s: float) -> bool:
    """Poll ``predicate`` (plain or async) every 0.2 s; whether it held within the time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return True
        await asyncio.sleep(0.2)
    return False


async def has_captioner(lk: LiveKitSettings, room: str) -> bool:
    try:
        ps = await list_participants(lk, room)
    except Exception:  # noqa: BLE001 - the room may not exist yet
        return False
    return any(p.attributes.get("greffier.role") == "captioner" for p in ps)


@dataclass
class Meeting:
    """A room with a listener collecting captions and the agent dispatched into it."""

    rig: Rig
    room: str = field(default_factory=lambda: f"rel-{uuid.uuid4().hex[:8]}")
    listener: Any = None
    got: CaptionCollector | None = None
    hears_audio: bool = True
    """The listener subscribes to the speakers' audio, as a person would (the soak's ten
    listeners do not: decoding 20 tracks ten times over would be the harness's load)."""

    async def open(self, dispatch: bool = True) -> Meeting:
        self.listener = await connect(self.rig.lk, identity="listener", room=self.room,
                                      name="Listener", auto_subscribe=self.hears_audio)
        self.got = CaptionCollector(self.listener)
        if dispatch:
            await dispatch_agent(self.rig.lk, self.room, self.rig.agent_name)
            if not await wait_for(lambda: has_captioner(self.rig.lk, self.room), 30):
                raise RuntimeError(f"no captioner joined:\n{self.rig.worker.tail()}")
        return self

    def finals(self, speaker: str | None = None) -> list[Any]:
        assert self.got is not None
        return self.got.finals("data", speaker)

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.disconnect()

    def stored(self) -> tuple[int, dict[str, str]]:
        """Meetings of the room in the store, and the stored finals (id -> text)."""
        store = self.rig.store()
        try:
            meetings = store.list_meetings(room=self.room)
            segs = {s.segment_id: s.text for m in meetings for s in store.segments_of(m.id)}
            return len(meetings), segs
        finally:
            store.close()


@contextlib.asynccontextmanager
async def track_of(room: Any, name: str = "microphone") -> AsyncIterator[Any]:
    """A published microphone track whose frames the caller pushes (``push``), paced."""
    from livekit import rtc

    source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    track = rtc.LocalAudioTrack.create_audio_track(name, source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    pub = await room.local_participant.publish_track(track, options)
    await asyncio.sleep(0.3)

    async def push(samples: FloatArray) -> None:
        pcm = float32_to_pcm16(np.asarray(samples, np.float32))
        per = SAMPLE_RATE // 50
        start = time.time()
        for i in range(0, pcm.size - per + 1, per):
            delay = start + i / SAMPLE_RATE - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await source.capture_frame(rtc.AudioFrame(pcm[i:i + per].tobytes(), SAMPLE_RATE,
                                                      1, per))
        await source.wait_for_playout()

    try:
        yield push
    finally:
        with contextlib.suppress(Exception):
            await room.local_participant.unpublish_track(pub.sid)
        await source.aclose()


def words_found(reference: str, finals: list[str]) -> float:
    """Share of the reference's words (lower case, letters) found in the finals."""
    def norm(t: str) -> list[str]:
        return ["".join(ch for ch in w.lower() if ch.isalnum()) for w in t.split()]

    have = set(norm(" ".join(finals)))
    ref = [w for w in norm(reference) if w]
    return sum(w in have for w in ref) / max(1, len(ref))


# -- scenarios -----------------------------------------------------------------------------


async def join_leave(rig: Rig, settings: Settings, cycles: int) -> dict[str, Any]:
    """A participant joins, speaks one sentence and leaves, ``cycles`` times."""
    sentence = clip(settings, "ljspeech_LJ001-0002")  # 1.9 s
    m = await Meeting(rig).open()
    pid = rig.worker.pid
    rss: list[float] = []
    t0 = time.monotonic()
    try:
        for _ in range(cycles):
            guest = await connect(rig.lk, identity="guest", room=m.room, name="Guest",
                                  auto_subscribe=False)
            await publish_audio(guest, np.concatenate([sentence, silence(0.6)]), SAMPLE_RATE)
            await guest.disconnect()
            rss.append(vm_rss_mb(pid))
        await wait_for(lambda: _tracks(m) >= cycles, 15)
        await asyncio.sleep(1.0)
        rss_end = vm_rss_mb(pid)
    finally:
        await m.close()
    # From the second cycle on: the first track allocates once for all.
    base = rss[1] if len(rss) > 1 else rss[0]
    with_final = _tracks(m)
    return {
        "cycles": cycles,
        "cycles_with_a_final": with_final,
        "finals": len(m.finals("guest")),
        "rss_mb_after_cycle_2": round(base, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_growth_pct": round(100 * (rss_end - base) / base, 2),
        "rss_mb_per_cycle": [round(r, 1) for r in rss],
        "seconds": round(time.monotonic() - t0, 1),
    }


def _tracks(m: Meeting) -> int:
    """Tracks (one per join) that got a final."""
    return len({c.track_sid for c in m.finals("guest")})


async def stalled_track(rig: Rig, settings: Settings, stall_s: float) -> dict[str, Any]:
    """Frames stop mid-speech (the track stays published) for ``stall_s``, then speech again
    on the same track."""
    first = clip(settings, "ljspeech_LJ001-0009")
    second = clip(settings, "ljspeech_LJ001-0004")
    refs = {c.id: c.reference for c in read_manifest(settings.speech_data / "manifest.tsv")}
    # Cut the first sentence while it is being said: no trailing silence reaches the VAD.
    cut = first[: int(0.8 * first.size)]
    m = await Meeting(rig).open()
    speaker = await connect(rig.lk, identity="stella", room=m.room, name="Stella",
                            auto_subscribe=False)
    try:
        async with track_of(speaker) as push:
            await push(np.concatenate([silence(0.5), cut]))
            stopped = time.time()
            finalised = await wait_for(lambda: bool(m.finals("stella")), stall_s)
            final_after = (
                min(c.received_at for c in m.finals("stella")) - stopped if finalised else None
            )
            before = [c.text for c in m.finals("stella")]
            await asyncio.sleep(max(0.0, stopped + stall_s - time.time()))
            await push(np.concatenate([second, silence(1.5)]))
            await wait_for(lambda: len(m.finals("stella")) >= len(before) + 1, 15)
        await asyncio.sleep(1.0)
    finally:
        await speaker.disconnect()
        await m.close()
    after = [c.text for c in m.finals("stella")][len(before):]
    meetings, stored = m.stored()
    published = {c.segment_id for c in m.finals("stella")}
    return {
        "stall_s": stall_s,
        "finalised_during_stall": finalised,
        "final_after_stop_s": round(final_after, 2) if final_after is not None else None,
        "words_before_stall_found": round(
            words_found(" ".join(refs["ljspeech_LJ001-0009"].split()[: int(0.6 * len(
                refs["ljspeech_LJ001-0009"].split()))]), before), 2),
        "captioned_after_stall": bool(after),
        "words_after_stall_found": round(words_found(refs["ljspeech_LJ001-0004"], after), 2),
        "finals_published": len(published),
        "finals_missing_from_store": len(published - set(stored)),
    }


async def server_restart(settings: Settings, data_dir: Path, down_s: float) -> dict[str, Any]:
    """Restart an own LiveKit server mid-meeting; people join again, the room comes back."""
    part1 = np.concatenate([clip(settings, "ljspeech_LJ001-0009"), silence(1.0),
                            clip(settings, "ljspeech_LJ001-0004"), silence(1.0)])
    part2 = np.concatenate([clip(settings, "ljspeech_LJ001-0011"), silence(1.5)])
    with own_server() as cfg, own_worker(LiveKitSettings(url=cfg.url), data_dir) as rig:
        m = await Meeting(rig).open()
        room = m.room
        speaker = await connect(rig.lk, identity="rita", room=room, name="Rita",
                                auto_subscribe=False)
        await publish_audio(speaker, part1, SAMPLE_RATE)
        await wait_for(lambda: len(m.finals("rita")) >= 2, 10)
        before = {c.segment_id: c.text for c in m.finals("rita")}
        restarted_at = time.time()
        lk_server.stop(cfg)
        await asyncio.sleep(down_s)
        lk_server.start(cfg)
        with contextlib.suppress(Exception):
            await speaker.disconnect()
        with contextlib.suppress(Exception):
            await m.close()
        # The people come back (a front end reconnects them); the room has no dispatch now.
        m2 = Meeting(rig, room=room)
        await m2.open(dispatch=False)
        speaker = await connect(rig.lk, identity="rita", room=room, name="Rita",
                                auto_subscribe=False)
        back = await wait_for(lambda: has_captioner(rig.lk, room), 40)
        recovered_s = time.time() - restarted_at
        worker_alive = rig.worker.proc is not None and rig.worker.proc.poll() is None
        if back:
            await publish_audio(speaker, part2, SAMPLE_RATE)
            await wait_for(lambda: bool(m2.finals("rita")), 10)
        await speaker.disconnect()
        await m2.close()
        await asyncio.sleep(4.5)  # linger (3 s) then the minutes
        meetings, stored = m2.stored()
        exit_code = rig.worker.stop()
    return {
        "server_down_s": down_s,
        "worker_alive_after_restart": worker_alive,
        "worker_exit_code": exit_code,
        "captioner_back": back,
        "captioner_back_after_restart_s": round(recovered_s, 1) if back else None,
        "finals_before_restart": len(before),
        "finals_before_restart_missing_from_store": sum(
            1 for sid, text in before.items() if stored.get(sid) != text),
        "finals_after_restart": len(m2.finals("rita")),
        "meeting_records": meetings,
        "record_continued": meetings == 1 and len(stored) > len(before),
    }


async def store_down(settings: Settings, lk: LiveKitSettings, data_dir: Path,
                     down_s: float) -> dict[str, Any]:
    """Stop the worker's PostgreSQL for ``down_s`` while a participant speaks."""
    # The first sentence's final is stored before the outage; short sentences follow, so
    # finals are made while the store is down.
    ids = ["ljspeech_LJ001-0001", "ljspeech_LJ001-0004", "ljspeech_LJ001-0011",
           "ljspeech_LJ001-0006", "ljspeech_LJ001-0016", "ljspeech_LJ001-0013"]
    if down_s > 15:
        ids[4:4] = ["ljspeech_LJ001-0009", "ljspeech_LJ001-0015", "ljspeech_LJ001-0005"]
    pg = PostgresCluster().init()
    try:
        env = {"GREFFIER_STORE__URL": pg.url, "GREFFIER_STORE__RETRY_MAX_S": "2"}
        with own_worker(lk, data_dir, **env) as rig:
            m = await Meeting(rig).open()
            speaker = await connect(lk, identity="sam", room=m.room, name="Sam",
                                    auto_subscribe=False)
            pieces: list[FloatArray] = []
            for i in ids:
                pieces += [clip(settings, i), silence(0.8)]
            audio = np.concatenate(pieces)
            # Stop the store once the first final is in; the speech goes on meanwhile.
            publishing = asyncio.create_task(publish_audio(speaker, audio, SAMPLE_RATE))
            await wait_for(lambda: bool(m.finals("sam")), 20)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(pg.stop)
            down_at = time.time()
            await asyncio.sleep(down_s)
            journaled = sum(len(f.read_bytes().splitlines())
                            for f in (data_dir / "journal").glob("*.jsonl"))
            await asyncio.to_thread(pg.start)
            up_at = time.time()
            made = {c.segment_id for c in m.finals("sam")}

            async def made_stored() -> bool:
                _, stored = await asyncio.to_thread(m.stored)
                return made <= set(stored)

            drained = await wait_for(made_stored, 30)
            drain_s = time.time() - up_at
            await publishing
            await wait_for(lambda: len(m.finals("sam")) >= len(ids) - 1, 10)
            await asyncio.sleep(1.5)
            published = {c.segment_id: c for c in m.finals("sam")}
            during = sum(1 for c in published.values() if down_at <= c.received_at <= up_at)
            meetings, stored = m.stored()
            await speaker.disconnect()
            await m.close()
            log = "\n".join(rig.worker.lines)
    finally:
        pg.destroy()
    return {
        "store_down_s": down_s,
        "finals_published": len(published),
        "finals_published_while_down": during,
        "journal_entries_at_end_of_outage": journaled,
        "finals_missing_from_store": sum(
            1 for sid, c in published.items() if stored.get(sid) != c.text),
        "finals_so_far_stored_within_s_of_restart": round(drain_s, 1) if drained else None,
        "meeting_records": meetings,
        "store_errors_logged": "failed" in log,
    }


async def soak(settings: Settings, lk: LiveKitSettings, data_dir: Path, rooms: int,
               minutes: float) -> dict[str, Any]:
    """``rooms`` rooms x 2 speakers taking turns for ``minutes`` on one worker (one voice at
    a time per room, as in a meeting: ``rooms`` voices at once)."""
    clips = [c for c in read_manifest(settings.speech_data / "manifest.tsv")
             if c.language == "en" and c.id.startswith("ljspeech")]
    seconds = minutes * 60
    with own_worker(lk, data_dir) as rig:
        meetings = [await Meeting(rig, hears_audio=False).open() for _ in range(rooms)]
        port = int(rig.worker.env["GREFFIER_AGENT__METRICS_PORT"])
        before = _scrape(port)
        buckets0 = _final_buckets(port)
        rss0 = vm_rss_mb(rig.worker.pid)
        cpu0 = (cpu_s(rig.worker.pid), cpu_s(os.getpid()), time.monotonic())

        # Speakers join one after another: 20 connections at once from one process made the
        # LiveKit SDK's FFI give up waiting for a room ("ReadyForRoomEventRequest") and abort.
        speakers = {}
        for i, m in enumerate(meetings):
            for j in range(2):
                who = f"s{i}-{j}"
                speakers[who] = await connect(lk, identity=who, room=m.room, name=who,
                                              auto_subscribe=False)

        def conversation(offset: int) -> tuple[FloatArray, FloatArray]:
            """Two people taking turns (a clip each, 0.5 s between turns) for ``seconds``:
            each track is its speaker's clips and silence while the other speaks."""
            n = int(seconds * SAMPLE_RATE)
            tracks = (np.zeros(n, np.float32), np.zeros(n, np.float32))
            at, k, turn = 0, offset, 0
            while at < n:
                whole = clips[k % len(clips)].audio()
                a = whole[: n - at]
                if a.size == whole.size:  # a clip cut by the end is not counted
                    said[f"s{offset // 2}-{turn}"].append(clips[k % len(clips)].reference)
                tracks[turn][at:at + a.size] = a
                at += a.size + SAMPLE_RATE // 2
                k, turn = k + 3, 1 - turn
            return tracks

        async def speak(who: str, audio: FloatArray) -> None:
            p = speakers[who]
            # 100 ms frames: a tenth of the harness's own work per second of audio (the
            # worker still receives WebRTC's 10 ms frames)
            await publish_audio(p, audio, SAMPLE_RATE, frame_ms=100)
            await p.disconnect()

        said: dict[str, list[str]] = {who: [] for who in speakers}
        talks = []
        for i in range(len(meetings)):
            first, second = conversation(i * 2)
            talks += [speak(f"s{i}-0", first), speak(f"s{i}-1", second)]
        await asyncio.gather(*talks)
        cpu1 = (cpu_s(rig.worker.pid), cpu_s(os.getpid()), time.monotonic())
        # Past capacity the finals come late, never dropped: wait until none has arrived for
        # 30 s (at most 10 minutes) before counting them.
        spoken = time.monotonic()
        count, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 30 and time.monotonic() - spoken < 600:
            now_count = sum(len(m.finals()) for m in meetings)
            if now_count != count:
                count, quiet_since = now_count, time.monotonic()
            await asyncio.sleep(1)
        drain_s = max(0.0, quiet_since - spoken)
        after = _scrape(port)
        buckets1 = _final_buckets(port)
        rss1 = vm_rss_mb(rig.worker.pid)
        finals = [len(m.finals()) for m in meetings]
        interims = [len([c for c in m.got.via("data") if not c.final]) for m in meetings
                    if m.got is not None]
        # each speaker's finals against what that speaker said, in order
        wers = [word_error_rate([" ".join(said[f"s{i}-{j}"])],
                                [" ".join(c.text for c in m.finals(f"s{i}-{j}"))]).wer
                for i, m in enumerate(meetings) for j in range(2)]
        missing = 0
        for m in meetings:
            _, stored = m.stored()
            missing += len({c.segment_id for c in m.finals()} - set(stored))
            await m.close()
        # the worker's log (no transcript text in it) outlives the run, for a look afterwards
        kept = Path(tempfile.gettempdir()) / "greffier-soak-worker.log"
        shutil.copyfile(data_dir / "worker.log", kept)
        print(f"worker log: {kept}", file=sys.stderr)
    return {
        "rooms": rooms, "speakers": rooms * 2, "minutes": minutes,
        "finals": sum(finals), "finals_per_room_min": min(finals),
        "interims_per_speaker_minute": round(sum(interims) / (rooms * 2 * minutes), 1),
        "wer_finals_per_speaker_mean": round(sum(wers) / len(wers), 3),
        "wer_finals_per_speaker_max": round(max(wers), 3),
        "finals_missing_from_store": missing,
        "last_final_after_audio_end_s": round(drain_s, 1),
        "final_latency_p50_s": histogram_quantile(buckets0, buckets1, 0.5),
        "final_latency_p95_s": histogram_quantile(buckets0, buckets1, 0.95),
        "dropped_interims": _delta(before, after, "greffier_engine_dropped_interims"),
        "skipped_interims": _delta(before, after, "greffier_skipped_interims"),
        "dropped_audio_s": round(_delta(before, after, "greffier_dropped_audio_seconds"), 1),
        "store_errors": _delta(before, after, "greffier_store_errors"),
        "rss_mb_start": round(rss0, 1), "rss_mb_end": round(rss1, 1),
        # cores used while the speakers spoke: the worker, and this harness (20 publishers
        # and 10 listeners on the same 2 cores)
        "worker_cores": round((cpu1[0] - cpu0[0]) / (cpu1[2] - cpu0[2]), 2),
        "harness_cores": round((cpu1[1] - cpu0[1]) / (cpu1[2] - cpu0[2]), 2),
    }


def _metrics_text(port: int) -> str:
    """The worker's metrics page (a busy worker may take a while to answer)."""
    import httpx

    for attempt in range(3):
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        except httpx.TimeoutException:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = _metrics_text(port)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def _final_buckets(port: int) -> dict[float, float]:
    """Cumulative counts of the worker's final-latency histogram, by upper bound."""
    from prometheus_client.parser import text_string_to_metric_families

    text = _metrics_text(port)
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "greffier_caption_latency_seconds_bucket" and (
                s.labels.get("kind") == "final"
            ):
                out[float(s.labels["le"])] = s.value
    return out


def histogram_quantile(before: dict[float, float], after: dict[float, float],
                       q: float) -> float | None:
    """Quantile ``q`` of what a cumulative histogram counted between two scrapes (linear
    within a bucket, as Prometheus' histogram_quantile)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return round(lower + (bound - lower) * share, 3)
        lower, below = bound, count
    return lower


def _delta(before: dict[str, float], after: dict[str, float], prefix: str) -> float:
    keys = [k for k in after if k.startswith(prefix) and k.endswith("_total")]
    return sum(after[k] - before.get(k, 0.0) for k in keys)


# -- script --------------------------------------------------------------------------------

SHORT = {"join_leave": 10, "server_down_s": 2.0, "stall_s": 6.0, "store_down_s": 10.0}
LONG = {"join_leave": 50, "server_down_s": 5.0, "stall_s": 10.0, "store_down_s": 30.0}


async def run(names: list[str], short: bool, settings: Settings, lk: LiveKitSettings,
              work: Path, soak_rooms: int = 10, soak_minutes: float = 5.0) -> dict[str, Any]:
    form = SHORT if short else LONG
    out: dict[str, Any] = {}
    needs_worker = [n for n in names if n in ("join_leave", "stalled_track")]
    if needs_worker:
        (work / "shared").mkdir(parents=True, exist_ok=True)
        with own_worker(lk, work / "shared") as rig:
            if "join_leave" in names:
                out["join_leave"] = await join_leave(rig, settings, int(form["join_leave"]))
            if "stalled_track" in names:
                out["stalled_track"] = await stalled_track(rig, settings, form["stall_s"])
    if "server_restart" in names:
        (work / "restart").mkdir(parents=True, exist_ok=True)
        out["server_restart"] = await server_restart(settings, work / "restart",
                                                     form["server_down_s"])
    if "store_down" in names:
        (work / "store").mkdir(parents=True, exist_ok=True)
        out["store_down"] = await store_down(settings, lk, work / "store", form["store_down_s"])
    if "soak" in names:
        (work / "soak").mkdir(parents=True, exist_ok=True)
        out["soak"] = await soak(settings, lk, work / "soak", rooms=soak_rooms,
                                 minutes=soak_minutes)
    return out


def table(data: dict[str, Any]) -> str:
    lines = [f"# Reliability ({data['form']} forms)", "",
             f"`{data['command']}` on {data['machine']['cpu']} ({data['machine']['cores']} "
             f"cores), {data['machine']['date']}. Other jobs may have shared the machine.", ""]
    for name, counts in data["scenarios"].items():
        lines += [f"## {name}", "", "| count | value |", "|---|---|"]
        lines += [f"| {k} | {json.dumps(v) if isinstance(v, list) else v} |"
                  for k, v in counts.items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI forms")
    parser.add_argument("--only", default="join_leave,stalled_track,server_restart,store_down",
                        help="comma-separated scenarios (soak is long only)")
    parser.add_argument("--soak-rooms", type=int, default=10, help="rooms of 2 speakers")
    parser.add_argument("--soak-minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if args.short and "soak" in names:
        parser.error("the soak has no short form")
    settings = Settings()
    lk = settings.livekit
    started = lk_server.start(lk_server.ServerConfig(cache_dir=settings.cache_dir))
    try:
        with tempfile.TemporaryDirectory(prefix="greffier-rel-") as work:
            scenarios = asyncio.run(run(names, args.short, settings, lk, Path(work),
                                        args.soak_rooms, args.soak_minutes))
    finally:
        if started:
            lk_server.stop(lk_server.ServerConfig(cache_dir=settings.cache_dir))
    name = "reliability" if not args.short else "reliability_short"
    command = "python -m benchmarks.reliability " + " ".join(argv or sys.argv[1:])
    previous = args.out / f"{name}.json"
    if previous.is_file():
        # a run of some scenarios keeps the others' figures (each says how it was made)
        before = json.loads(previous.read_text(encoding="utf-8"))
        kept = before.get("scenarios", {})
        for figures in kept.values():
            figures.setdefault("command", before.get("command", ""))
        scenarios = {**kept, **{k: {**v, "command": command} for k, v in scenarios.items()}}
    data = {
        "form": "short" if args.short else "long",
        "command": command,
        "machine": machine(),
        "scenarios": scenarios,
    }
    write_results(name, data, table(data), args.out)
    print(json.dumps(scenarios, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
