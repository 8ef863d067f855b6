"""Transcription jobs that survive (no model): jobs and their minutes in a real SQLite store
across store and app instances, interrupted jobs queued again or failed with a reason,
orphaned uploads swept, the duration limit (an hour of silent FLAC refused without decoding
it, and stopped while decoding when the container declares no duration), the per-job timeout,
the bound on uploads in flight, hostile and long file names, languages checked against
Whisper's list."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av
import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from greffier.core.audio import AudioTooLongError, read_audio_bounded
from greffier.core.config import ServiceSettings, Settings, StoreSettings
from greffier.core.types import Speaker, TranscriptSegment, Word
from greffier.service.app import create_app
from greffier.service.jobs import Job, Runner
from greffier.service.languages import WHISPER_LANGUAGES, whisper_language
from greffier.store.jobs import (
    FAILED,
    JOB_FIELDS,
    QUEUED,
    RUNNING,
    JobRecord,
    JobStore,
    jobs_table,
)
from greffier.subtitles.minutes import Minutes, assemble_minutes

pytestmark = pytest.mark.unit

KEY = "jobs-operator-key-0123456789"
OPERATOR = {"Authorization": f"Bearer {KEY}"}
PARIS = ZoneInfo("Europe/Paris")
WAV = ("meeting.wav", b"RIFF" + bytes(2000), "audio/wav")
RATE = 16_000


def make_settings(tmp_path: Path, **service: Any) -> Settings:
    base = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                    store=StoreSettings(url=f"sqlite:///{tmp_path / 'store.db'}"))
    options = {"web_assets_dir": tmp_path / "web", "api_keys": [SecretStr(KEY)], **service}
    return base.model_copy(update={"service": ServiceSettings(**options)})


def minutes_of(name: str) -> Minutes:
    words = (Word(0.5, 0.9, " Bonjour", 0.9), Word(1.0, 1.4, " tout", 0.8),
             Word(1.5, 2.0, " le", 0.9), Word(2.1, 2.6, " monde.", 0.95))
    seg = TranscriptSegment("seg-00000", Speaker("speaker", name), 0.5, 2.6,
                            "Bonjour tout le monde.", "fr", words)
    return assemble_minutes([seg], title=name, started_at=datetime(2025, 5, 6, 10, tzinfo=PARIS))


def quick(job: Job, report: Callable[[float, float], None]) -> Minutes:
    report(1.0, 3.0)
    return minutes_of(Path(job.filename).stem)


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[list[Any]]:
    made: list[Any] = []
    yield made
    for app in made:
        app.state.greffier.close()


def new_app(apps: list[Any], tmp_path: Path, runner: Runner = quick, **service: Any) -> Any:
    app = create_app(make_settings(tmp_path, **service), runner=runner)
    apps.append(app)
    return app


def client_for(app: Any, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                             headers=OPERATOR if headers is None else headers)


async def wait_status(c: httpx.AsyncClient, job_id: str, *states: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(400):
        r = await c.get(f"/api/transcriptions/{job_id}")
        body = r.json()
        if r.status_code == 200 and body["status"] in states:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {states}: {body}")


def record(job_id: str, upload: Path, status: str, attempts: int = 0) -> JobRecord:
    return JobRecord(id=job_id, filename="réunion du lundi.wav", upload=str(upload),
                     diarize=False, language="fr", model="", status=status,
                     created_at=time.time() - 60, attempts=attempts,
                     started_at=time.time() - 30 if status == RUNNING else None)


def old_upload(upload_dir: Path, job_id: str, name: str = "meeting.wav") -> Path:
    path = upload_dir / job_id / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + bytes(100))
    past = time.time() - 3600
    os.utime(path, (past, past))
    os.utime(path.parent, (past, past))
    return path


# -- the store ---------------------------------------------------------------------------


def test_a_job_and_its_minutes_are_read_back_by_a_new_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = JobStore(url)
    done = JobRecord(id="a1", filename="x" * 300, upload="/nowhere/a1/x.wav", diarize=True,
                     language="fr", model="base", status="done", created_at=1.0,
                     started_at=2.0, finished_at=3.0, progress_s=2.6, duration_s=3.0,
                     attempts=1, minutes=minutes_of("Salle A"))
    store.put(record("q1", tmp_path / "q1" / "x.wav", QUEUED))
    store.put(done)
    store.close()
    again = JobStore(url)
    back = again.get("a1")
    assert back is not None and back.minutes is not None
    assert back.filename == "x" * 300 and back.status == "done" and back.diarize
    assert back.minutes.segments[0].text == "Bonjour tout le monde."
    assert back.minutes.segments[0].words == done.minutes.segments[0].words  # type: ignore[union-attr]
    assert [r.id for r in again.unfinished()] == ["q1"]
    assert again.get("nope") is None
    again.close()


def test_a_job_and_its_record_share_every_field_and_the_table_holds_them(tmp_path: Path) -> None:
    import sqlalchemy as sa

    assert [c.name for c in jobs_table(sa.MetaData()).columns] == list(JOB_FIELDS)
    stored = record("r1", tmp_path / "r1" / "x.wav", RUNNING, attempts=1)
    job = Job.of(stored)
    assert job.path == tmp_path / "r1" / "x.wav" and job.status == RUNNING and job.stored
    assert job.record() == stored


async def test_jobs_and_results_survive_a_restart(tmp_path: Path, apps: list[Any]) -> None:
    app = new_app(apps, tmp_path)
    async with client_for(app) as c:
        job_id = (await c.post("/api/transcriptions", files={"file": WAV},
                               data={"language": "fr"})).json()["id"]
        await wait_status(c, job_id, "done")
    app.state.greffier.close()
    restarted = new_app(apps, tmp_path)
    async with client_for(restarted) as c:
        body = await wait_status(c, job_id, "done")
        srt = await c.get(body["result"]["srt"])
    assert body["filename"] == "meeting.wav" and body["duration_s"] == 3.0
    assert srt.status_code == 200 and "Bonjour tout le monde." in srt.text
    assert srt.headers["cache-control"] == "no-store"


async def test_a_restart_queues_interrupted_jobs_again_fails_the_lost_and_sweeps_orphans(
    tmp_path: Path, apps: list[Any],
) -> None:
    uploads = tmp_path / "data" / "uploads"
    store = JobStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.put(record("running1", old_upload(uploads, "running1"), RUNNING, attempts=1))
    store.put(record("queued1", old_upload(uploads, "queued1"), QUEUED))
    store.put(record("twice1", old_upload(uploads, "twice1"), RUNNING, attempts=2))
    store.put(record("lost1", uploads / "lost1" / "gone.wav", QUEUED))
    store.close()
    orphan = old_upload(uploads, "0123456789abcdef")
    stray = uploads / "stray.part"
    stray.write_bytes(b"x")
    os.utime(stray, (time.time() - 3600,) * 2)
    ran: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        ran.append(job.id)
        assert job.path.is_file(), "a job queued again still has its upload"
        started.set()
        release.wait(5)
        return quick(job, report)

    app = new_app(apps, tmp_path, runner)
    async with client_for(app) as c:
        first = await c.get("/api/transcriptions/running1")  # opens the queue on the store
        assert first.status_code == 200 and first.json()["status"] in (QUEUED, RUNNING)
        assert not orphan.parent.exists() and not stray.exists(), "orphans are swept at once"
        release.set()
        running = await wait_status(c, "running1", "done")
        queued = await wait_status(c, "queued1", "done")
        twice = (await c.get("/api/transcriptions/twice1")).json()
        lost = (await c.get("/api/transcriptions/lost1")).json()
    assert ran == ["running1", "queued1"], "queued again in their order, the others not run"
    assert running["error"] is None and queued["error"] is None
    assert twice["status"] == FAILED and "stopped 2 times" in twice["error"]
    assert lost["status"] == FAILED and "upload was lost" in lost["error"]
    assert not any(uploads.iterdir()), "every upload is gone once its job ended"
    assert JobStore(f"sqlite:///{tmp_path / 'store.db'}").get("running1").attempts == 2  # type: ignore[union-attr]


def test_the_service_runs_interrupted_jobs_at_start_without_a_request(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    uploads = tmp_path / "data" / "uploads"
    store = JobStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.put(record("waiting1", old_upload(uploads, "waiting1"), QUEUED))
    store.close()
    ran = threading.Event()

    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        ran.set()
        return quick(job, report)

    app = create_app(make_settings(tmp_path), runner=runner)
    with TestClient(app):  # runs the lifespan, as uvicorn does
        assert ran.wait(10), "the job ran with no request made"
    app.state.greffier.close()
    back = JobStore(f"sqlite:///{tmp_path / 'store.db'}").get("waiting1")
    assert back is not None and back.status == "done" and back.minutes is not None


async def test_a_job_past_its_timeout_fails_and_says_why(tmp_path: Path, apps: list[Any]) -> (
    None
):
    def slow(job: Job, report: Callable[[float, float], None]) -> Minutes:
        for k in range(200):
            time.sleep(0.02)
            report(k * 0.1, 30.0)
        return quick(job, report)

    app = new_app(apps, tmp_path, slow, job_timeout_s=0.3)
    async with client_for(app) as c:
        job_id = (await c.post("/api/transcriptions", files={"file": WAV})).json()["id"]
        body = await wait_status(c, job_id, "done", "failed")
    assert body["status"] == FAILED
    assert "longer than 0.3 s" in body["error"] and "JOB_TIMEOUT_S" in body["error"]


# -- the duration limit ------------------------------------------------------------------


def silent_flac(dest: Path | io.RawIOBase, seconds: int) -> None:
    """``seconds`` of digital silence as 16 kHz FLAC (about 180 bytes a second)."""
    out = av.open(dest, "w", format="flac")
    stream = out.add_stream("flac", rate=RATE, layout="mono")
    block = np.zeros((1, RATE * 10), np.int16)
    for n in range(0, seconds * RATE, block.shape[1]):
        frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, n
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()


class Pipe(io.RawIOBase):
    """A write-only, unseekable sink: the FLAC muxer cannot go back to write the length."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)


@pytest.fixture(scope="module")
def hour_of_silence(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("bomb")
    declared = folder / "silence.flac"
    silent_flac(declared, 3600)
    undeclared = folder / "silence-undeclared.flac"
    short = folder / "short-undeclared.flac"
    for path, seconds in ((undeclared, 600), (short, 20)):
        pipe = Pipe()
        silent_flac(pipe, seconds)
        path.write_bytes(pipe.data)
    return declared, undeclared, short


def test_an_hour_of_silent_flac_is_refused_from_its_metadata(
    hour_of_silence: tuple[Path, Path, Path],
) -> None:
    declared = hour_of_silence[0]
    assert declared.stat().st_size < 1_000_000  # 230 MB once decoded to float32
    tracemalloc.start()
    try:
        with pytest.raises(AudioTooLongError, match="longer than 600 s") as refused:
            read_audio_bounded(declared, 600)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.decoded_s == 0.0, "refused before decoding anything"
    assert peak < 5_000_000


def test_a_recording_declaring_no_duration_is_stopped_at_the_limit(
    hour_of_silence: tuple[Path, Path, Path],
) -> None:
    undeclared = hour_of_silence[1]
    with av.open(str(undeclared)) as container:
        assert container.duration is None and container.streams.audio[0].duration is None
    tracemalloc.start()
    try:
        with pytest.raises(AudioTooLongError) as refused:
            read_audio_bounded(undeclared, 60)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 59.0 <= refused.value.decoded_s <= 60.0, "decoding stopped at the limit"
    limit_bytes = 60 * RATE * 4
    assert peak < 2 * limit_bytes + 2_000_000, f"{peak} bytes held for a {limit_bytes} limit"
    audio, info = read_audio_bounded(hour_of_silence[2], 60)  # within the limit: all of it
    assert info.duration == pytest.approx(20, abs=0.1) and audio.size == info.duration * RATE


async def test_the_job_api_refuses_a_recording_over_the_limit(
    tmp_path: Path, apps: list[Any], hour_of_silence: tuple[Path, Path, Path],
) -> None:
    app = create_app(make_settings(tmp_path, max_duration_s=120))  # the real runner
    apps.append(app)
    async with client_for(app) as c:
        for path in hour_of_silence[:2]:
            r = await c.post("/api/transcriptions", files={
                "file": (path.name, path.read_bytes(), "audio/flac")})
            assert r.status_code == 202
            body = await wait_status(c, r.json()["id"], "done", "failed")
            assert body["status"] == FAILED
            assert "longer than 120 s" in body["error"] and "MAX_DURATION_S" in body["error"]


# -- uploads -----------------------------------------------------------------------------


async def test_uploads_beyond_the_bound_are_refused_before_their_body_is_read(
    tmp_path: Path, apps: list[Any],
) -> None:
    app = new_app(apps, tmp_path, max_uploads_in_flight=1)
    queue = app.state.greffier.jobs
    read: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        read.append(1)
        yield b"--b\r\n"

    async with client_for(app) as c:
        assert (await c.get("/api/transcriptions/none")).status_code == 404
        assert queue.uploads.try_take()  # an upload is being received
        busy = await c.post("/api/transcriptions", content=body(),
                            headers={"Content-Type": "multipart/form-data; boundary=b"})
        queue.uploads.give_back()
        fine = await c.post("/api/transcriptions", files={"file": WAV})
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    assert "MAX_UPLOADS_IN_FLIGHT" in busy.json()["detail"]
    assert read == [], "the body was not read"
    assert fine.status_code == 202 and queue.uploads.taken == 0


@pytest.mark.parametrize("name", [
    "r" * 300 + ".wav",
    "../../../../etc/passwd",
    "..\\..\\windows\\system32\\evil.wav",
    "<img src=x onerror=alert(1)>.wav",
    "réunion ☎ " + "é" * 200 + ".flac",
    " .wav",
    "a;b\"c'd.mp3",
])
async def test_long_and_hostile_file_names_are_data(
    tmp_path: Path, apps: list[Any], name: str,
) -> None:
    seen: list[Job] = []

    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        seen.append(job)
        return quick(job, report)

    app = new_app(apps, tmp_path, runner)
    async with client_for(app) as c:
        r = await c.post("/api/transcriptions", files={"file": (name, WAV[1], "audio/wav")})
        assert r.status_code == 202, r.text
        body = await wait_status(c, r.json()["id"], "done", "failed")
        md = await c.get(f"/api/transcriptions/{body['id']}/result.md")
    assert body["status"] == "done"
    stored = seen[0].path
    assert stored.parent.parent == tmp_path / "data" / "uploads" and len(stored.name) <= 96
    assert len(body["filename"]) <= 255 and "/" not in body["filename"]
    assert md.status_code == 200
    disposition = md.headers["content-disposition"]
    assert "\n" not in disposition and len(disposition) < 700


async def test_languages_are_checked_against_whispers_list(tmp_path: Path, apps: list[Any]) -> (
    None
):
    seen: list[str] = []

    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        seen.append(job.language)
        return quick(job, report)

    app = new_app(apps, tmp_path, runner)
    async with client_for(app) as c:
        for bad in ("xx", "klingon", "../etc", "fr" * 40):
            r = await c.post("/api/transcriptions", files={"file": WAV}, data={"language": bad})
            assert r.status_code == 422, bad
            assert r.json()["detail"][0]["loc"] == ["body", "language"]
        for good in ("fr-CA", "French", "auto", "YUE"):
            r = await c.post("/api/transcriptions", files={"file": WAV}, data={"language": good})
            assert r.status_code == 202, good
            await wait_status(c, r.json()["id"], "done")
    assert seen == ["fr", "fr", "auto", "yue"]
    assert not any((tmp_path / "data" / "uploads").glob("*/*")), "refused uploads are not kept"


def test_whispers_language_list_is_faster_whispers() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert set(WHISPER_LANGUAGES) == set(_LANGUAGE_CODES)
    assert whisper_language("EN") == "en" and whisper_language("pt_BR") == "pt"
    assert whisper_language("") == "auto" and whisper_language("zz-ZZ") is None


async def test_the_job_routes_need_the_operator_key(tmp_path: Path, apps: list[Any]) -> None:
    app = new_app(apps, tmp_path)
    async with client_for(app, headers={}) as c:
        post = await c.post("/api/transcriptions", files={"file": WAV})
        get = await c.get("/api/transcriptions/anything")
    async with client_for(app, headers={"Authorization": "Bearer not-the-key"}) as c:
        wrong = await c.get("/api/transcriptions/anything")
    assert post.status_code == 401 and get.status_code == 401 and wrong.status_code == 401
    assert not any((tmp_path / "data" / "uploads").glob("*/*"))
