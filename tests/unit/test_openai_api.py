"""``POST /v1/audio/transcriptions`` in-process (no model): every response format read back by
the ``openai`` package's own models, Meet's request shape, model names, the errors in
OpenAI's shape (an undecodable file is a 400 with the real runner, before any model loads),
the operator key."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest
import srt
import webvtt
from openai.types.audio import TranscriptionDiarized, TranscriptionVerbose
from pydantic import SecretStr

from greffier.core.config import ServiceSettings, Settings, StoreSettings
from greffier.core.types import Speaker, TranscriptSegment, Word
from greffier.service.app import create_app
from greffier.service.jobs import Job
from greffier.subtitles.minutes import Minutes, assemble_minutes

pytestmark = pytest.mark.unit

KEY = "openai-operator-key-0123456789"
OPERATOR = {"Authorization": f"Bearer {KEY}"}
WAV = ("call.wav", b"RIFF" + bytes(3000), "audio/wav")


def make_settings(tmp_path: Path, **service: Any) -> Settings:
    base = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                    store=StoreSettings(url=f"sqlite:///{tmp_path / 'store.db'}"))
    options = {"web_assets_dir": tmp_path / "web", "api_keys": [SecretStr(KEY)], **service}
    return base.model_copy(update={"service": ServiceSettings(**options)})


def words(start: float, text: str) -> tuple[Word, ...]:
    out = []
    for k, w in enumerate(text.split()):
        out.append(Word(start + 0.4 * k, start + 0.4 * k + 0.3, " " + w, 0.9))
    return tuple(out)


def two_speakers(job: Job) -> Minutes:
    """What the batch path gives: with diarization, speakers ``speaker-<label>``."""
    if job.diarize:
        a, b = Speaker("speaker-1", "Speaker 1", "1"), Speaker("speaker-2", "Speaker 2", "2")
    else:
        a = b = Speaker("speaker", Path(job.filename).stem)
    lines = [(a, 0.5, "Hello, this is Alice."), (b, 3.0, "Hi Alice, Bob here."),
             (a, 6.0, "Shall we begin <now> & quickly?")]
    segs = [TranscriptSegment(f"seg-{k:05d}", who, t, t + 1.5, text, "en", words(t, text))
            for k, (who, t, text) in enumerate(lines)]
    return assemble_minutes(segs, title="call",
                            started_at=datetime(2025, 1, 2, tzinfo=ZoneInfo("UTC")))


@pytest.fixture
def seen() -> list[Job]:
    return []


@pytest.fixture
async def app(tmp_path: Path, seen: list[Job]) -> AsyncIterator[Any]:
    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        seen.append(job)
        report(8.0, 8.25)
        return two_speakers(job)

    made = create_app(make_settings(tmp_path), runner=runner)
    yield made
    made.state.greffier.close()


def client_for(app: Any, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                             headers=OPERATOR if headers is None else headers)


async def test_the_openai_client_reads_every_format(app: Any, seen: list[Job]) -> None:
    async with client_for(app) as http:
        client = openai.AsyncOpenAI(api_key=KEY, base_url="http://test/v1", http_client=http)
        plain = await client.audio.transcriptions.create(model="whisper-1", file=WAV)
        verbose = await client.audio.transcriptions.create(
            model="whisper-1", file=WAV, language="en", response_format="verbose_json",
            timestamp_granularities=["word", "segment"])
        text = await client.audio.transcriptions.create(model="whisper-1", file=WAV,
                                                        response_format="text")
        subrip = await client.audio.transcriptions.create(model="whisper-1", file=WAV,
                                                          response_format="srt")
        vtt = await client.audio.transcriptions.create(model="whisper-1", file=WAV,
                                                       response_format="vtt")
    full = "Hello, this is Alice. Hi Alice, Bob here. Shall we begin <now> & quickly?"
    assert plain.text == full
    assert isinstance(verbose, TranscriptionVerbose)
    assert verbose.language == "english" and verbose.duration == 8.25 and verbose.text == full
    assert verbose.segments is not None and [s.id for s in verbose.segments] == [0, 1, 2]
    assert verbose.segments[1].start == 3.0 and verbose.segments[1].text.strip() == (
        "Hi Alice, Bob here.")
    assert verbose.words is not None and verbose.words[0].word == "Hello,"
    assert [w.word for w in verbose.words][-1] == "quickly?" and len(verbose.words) == 14
    assert text.strip() == full
    cues = list(srt.parse(subrip))
    assert " ".join(c.content.replace("\n", " ") for c in cues) == full, "no speaker names"
    captions = webvtt.from_string(vtt).captions
    assert captions[0].start == "00:00:00.500" and not any(c.voice for c in captions)
    assert "&lt;now&gt; &amp;" in vtt and "<now>" not in vtt, "text is escaped, not markup"
    assert all(job.model == "base" and not job.diarize for job in seen)
    assert seen[1].language == "en" and seen[0].language == "auto"


async def test_a_request_built_like_meets_gets_speakers(app: Any, seen: list[Job]) -> None:
    async with client_for(app, headers={}) as http:
        r = await http.post(
            "/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {KEY}"},
            files={"file": ("recording.ogg", WAV[1], "audio/ogg")},
            data={"model": "whisper-1", "language": "fr",
                  "timestamp_granularities": ["word", "segment"],
                  "response_format": "diarized_json"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    parsed = TranscriptionDiarized.model_validate(body)
    assert [s.speaker for s in parsed.segments] == ["A", "B", "A"]
    assert [(s.start, s.end) for s in parsed.segments] == [(0.5, 2.0), (3.0, 4.5), (6.0, 7.5)]
    assert parsed.segments[1].text == "Hi Alice, Bob here." and parsed.segments[0].id == "seg_0"
    assert seen[0].diarize and seen[0].language == "fr"


@pytest.mark.parametrize(("fields", "param", "code"), [
    ({"response_format": "xml"}, "response_format", None),
    ({"language": "klingon"}, "language", "unsupported_language"),
    ({"model": "gpt-5-ultra"}, "model", "model_not_found"),
    ({"model": "/etc"}, "model", "model_not_found"),
    ({"model": "Systran/faster-whisper-large-v3"}, "model", "model_not_found"),
    ({"timestamp_granularities[]": "sentence"}, "timestamp_granularities[]", None),
    ({"temperature": "2"}, "temperature", None),
    ({"stream": "true"}, "stream", None),
])
async def test_invalid_fields_are_400_in_openais_shape(
    app: Any, seen: list[Job], fields: dict[str, str], param: str, code: str | None,
) -> None:
    async with client_for(app) as c:
        r = await c.post("/v1/audio/transcriptions", files={"file": WAV}, data=fields)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert code is None or error["code"] == code
    assert seen == []


async def test_model_names(app: Any, seen: list[Job]) -> None:
    async with client_for(app) as c:
        for name in ("whisper-1", "gpt-4o-transcribe-diarize", "tiny.en", "base"):
            r = await c.post("/v1/audio/transcriptions", files={"file": WAV},
                             data={"model": name})
            assert r.status_code == 200, r.text
    assert [j.model for j in seen] == ["base", "base", "tiny.en", "base"]


async def test_no_file_no_key_and_garbage(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))  # the real runner: decoding comes first
    async with client_for(app) as c:
        missing = await c.post("/v1/audio/transcriptions", data={"model": "whisper-1"})
        garbage = await c.post("/v1/audio/transcriptions", files={
            "file": ("audio.mp3", b"\x00garbage, not a recording\xff" * 100, "audio/mpeg")})
    async with client_for(app, headers={}) as c:
        anonymous = await c.post("/v1/audio/transcriptions", files={"file": WAV})
    async with client_for(app) as http:
        client = openai.AsyncOpenAI(api_key="wrong-key-wrong-key", base_url="http://test/v1",
                                    http_client=http, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await client.audio.transcriptions.create(model="whisper-1", file=WAV)
        client = openai.AsyncOpenAI(api_key=KEY, base_url="http://test/v1", http_client=http,
                                    max_retries=0)
        with pytest.raises(openai.BadRequestError) as bad:
            await client.audio.transcriptions.create(model="whisper-1", file=WAV)
    app.state.greffier.close()
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"
    assert garbage.status_code == 400, garbage.text
    assert garbage.json()["error"]["code"] == "invalid_file"
    assert "FFmpeg" in garbage.json()["error"]["message"]
    assert anonymous.status_code == 401
    assert bad.value.status_code == 400
    assert not any((tmp_path / "data" / "uploads").glob("*/*")), "nothing kept"


async def test_too_long_is_400_and_a_full_queue_429(tmp_path: Path) -> None:
    release = threading.Event()

    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        release.wait(10)
        return two_speakers(job)

    app = create_app(make_settings(tmp_path, max_queued_jobs=1), runner=runner)
    async with client_for(app) as c:
        first = asyncio.create_task(c.post("/v1/audio/transcriptions", files={"file": WAV}))
        while not app.state.greffier.jobs._thread or not any(
            j.status == "running" for j in app.state.greffier.jobs._jobs.values()
        ):
            await asyncio.sleep(0.01)
        second = asyncio.create_task(c.post("/v1/audio/transcriptions", files={"file": WAV}))
        await asyncio.sleep(0.3)
        third = await c.post("/v1/audio/transcriptions", files={"file": WAV})
        release.set()
        assert (await first).status_code == 200 and (await second).status_code == 200
    app.state.greffier.close()
    assert third.status_code == 429 and third.headers["retry-after"] == "30"
    assert third.json()["error"]["type"] == "rate_limit_exceeded"


async def test_nothing_of_a_synchronous_request_is_stored(app: Any, tmp_path: Path) -> None:
    async with client_for(app) as c:
        assert (await c.get("/api/transcriptions/none")).status_code == 404  # store opened
        r = await c.post("/v1/audio/transcriptions", files={"file": WAV})
    assert r.status_code == 200
    import sqlite3

    rows = sqlite3.connect(tmp_path / "store.db").execute(
        "SELECT count(*) FROM greffier_jobs").fetchone()
    assert rows == (0,)
    assert not any((tmp_path / "data" / "uploads").glob("*/*"))
