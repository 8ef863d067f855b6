"""The HTTP service in-process (ASGI, no server, no model): meetings and minutes from a real
SQLite store, read back by real parsers; viewer tokens; the transcription job API with a stand-in
runner (and the real one on an upload FFmpeg cannot read, which fails before any model loads);
the caption page's files. Requests are an operator's unless a test says otherwise
(tests/unit/test_service_auth.py covers who may call what)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jwt
import pytest
import srt
import webvtt
from pydantic import SecretStr

from greffier.core.config import ServiceSettings, Settings, StoreSettings
from greffier.core.errors import AudioFormatError
from greffier.core.types import Speaker, TranscriptSegment, Word
from greffier.service.app import create_app
from greffier.service.jobs import Job, Runner
from greffier.store.sql import TranscriptStore
from greffier.subtitles.minutes import Minutes, assemble_minutes

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
STARTED = datetime(2024, 3, 12, 9, 30, 15, tzinfo=PARIS).timestamp()
STAMP = datetime.fromtimestamp(STARTED).astimezone().strftime("%Y%m%d-%H%M")
"""Minutes are dated in the server's zone (the process's ``TZ``)."""
ALICE = Speaker("alice", "Alice Martin")
BOB = Speaker("bob", "Bob Durand")
LONG = ("Nous avons revu le budget de l'année prochaine et décidé de reporter la migration "
        "des serveurs au printemps, après la fin des travaux dans la salle informatique.")


def seg(sid: str, speaker: Speaker, start: float, text: str) -> TranscriptSegment:
    words = []
    t = start
    for w in text.split():
        words.append(Word(t, t + 0.3, " " + w, 0.9))
        t += 0.35
    return TranscriptSegment(sid, speaker, start, t, text, "fr", tuple(words), track_sid="TR_1")


OPERATOR_KEY = "test-operator-key-0123456789"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


def make_settings(tmp_path: Path, **service: Any) -> Settings:
    base = Settings(
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
    )
    options = {"web_assets_dir": tmp_path / "web", "api_keys": [SecretStr(OPERATOR_KEY)],
               **service}
    return base.model_copy(update={"service": ServiceSettings(**options)})


@pytest.fixture
def filled(tmp_path: Path) -> dict[str, str]:
    store = TranscriptStore(f"sqlite:///{tmp_path / 'store.db'}")
    weekly = store.open_meeting("salle-a", now=STARTED, title="Weekly")
    store.add_segment(weekly.id, seg("s2", BOB, 4.0, "Oui, allons-y."))
    store.add_segment(weekly.id, seg("s1", ALICE, 0.5, "Bonjour à tous, on commence ?"))
    store.add_segment(weekly.id, seg("s3", ALICE, 6.0, LONG))
    store.end_meeting(weekly.id, now=STARTED + 60)
    other = store.open_meeting("salle-b", now=STARTED + 3600)
    store.add_segment(other.id, seg("b1", BOB, 1.0, "Autre salle."))
    store.close()
    return {"weekly": weekly.id, "other": other.id}


def client_for(app: Any, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """An in-process client, an operator's unless ``headers`` says otherwise."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                             headers=OPERATOR if headers is None else headers)


@pytest.fixture
async def client(tmp_path: Path, filled: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path))
    async with client_for(app) as c:
        yield c
    app.state.greffier.close()


# -- health ------------------------------------------------------------------------------


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health", headers={"Authorization": ""})).json() == {
        "status": "ok"
    }
    ready = await client.get("/ready", headers={"Authorization": ""})
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "store": "ok"}


async def test_not_ready_when_the_store_cannot_open(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    settings = make_settings(tmp_path).model_copy(
        update={"store": StoreSettings(url=f"sqlite:///{tmp_path / 'a-file' / 'db.sqlite'}")}
    )
    app = create_app(settings)
    async with client_for(app) as c:
        ready = await c.get("/ready")
        meetings = await c.get("/api/meetings")
    # Open to anyone, so it says nothing of why (paths, URLs): that goes to the log.
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "store": "unavailable"}
    assert meetings.status_code == 503 and "transcript store" in meetings.json()["detail"]


# -- meetings and minutes ----------------------------------------------------------------


async def test_meetings_are_listed_most_recent_first_and_filtered_by_room(
    client: httpx.AsyncClient, filled: dict[str, str]
) -> None:
    listed = (await client.get("/api/meetings")).json()["meetings"]
    assert [m["id"] for m in listed] == [filled["other"], filled["weekly"]]
    weekly = listed[1]
    assert weekly["room"] == "salle-a" and weekly["title"] == "Weekly"
    assert datetime.fromisoformat(weekly["started_at"]).timestamp() == pytest.approx(STARTED)
    assert weekly["live"] is False and listed[0]["live"] is True and listed[0]["ended_at"] is None
    only = (await client.get("/api/meetings", params={"room": "salle-b"})).json()["meetings"]
    assert [m["id"] for m in only] == [filled["other"]]
    assert (await client.get("/api/meetings", params={"room": "nowhere"})).json() == {
        "meetings": []
    }
    assert (await client.get("/api/meetings", params={"limit": 0})).status_code == 422
    assert (await client.get("/api/meetings")).headers["cache-control"] == "no-store"


async def test_meeting_detail_has_metadata_and_segments_in_order(
    client: httpx.AsyncClient, filled: dict[str, str]
) -> None:
    r = await client.get(f"/api/meetings/{filled['weekly']}")
    assert r.status_code == 200
    body = r.json()
    assert body["participants"] == ["Alice Martin", "Bob Durand"]
    assert [s["id"] for s in body["segments"]] == ["s1", "s2", "s3"]
    first = body["segments"][0]
    assert first["speaker"]["display"] == "Alice Martin" and first["text"].startswith("Bonjour")
    assert body["duration_s"] > 6.0
    assert set(body["minutes"]) == {"md", "srt", "vtt", "json", "rttm"}
    assert (await client.get(body["minutes"]["srt"])).status_code == 200
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("fmt, media", [
    ("md", "text/markdown"), ("srt", "application/x-subrip"), ("vtt", "text/vtt"),
    ("json", "application/json"), ("rttm", "text/plain"),
])
async def test_minutes_download_type_and_name(
    client: httpx.AsyncClient, filled: dict[str, str], fmt: str, media: str
) -> None:
    r = await client.get(f"/api/meetings/{filled['weekly']}/minutes.{fmt}")
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == media
    assert f'filename="salle-a-{STAMP}.{fmt}"' in r.headers["content-disposition"]
    assert r.headers["content-disposition"].startswith("attachment")
    assert r.headers["cache-control"] == "no-store"


async def test_minutes_parse_back(client: httpx.AsyncClient, filled: dict[str, str]) -> None:
    base = f"/api/meetings/{filled['weekly']}/minutes"
    subs = list(srt.parse((await client.get(f"{base}.srt")).text))
    srt_text = " ".join(s.content.replace("\n", " ") for s in subs)
    assert subs[0].content.startswith("Alice Martin: Bonjour")
    assert "Bob Durand: Oui, allons-y." in srt_text and "salle informatique." in srt_text
    assert all(a.end <= b.start for a, b in zip(subs, subs[1:], strict=False))

    captions = webvtt.from_string((await client.get(f"{base}.vtt")).text).captions
    assert {c.voice for c in captions} == {"Alice Martin", "Bob Durand"}
    assert "Bonjour" in captions[0].text

    doc = json.loads((await client.get(f"{base}.json")).text)
    assert doc["schema"] == "greffier.minutes" and doc["meeting"]["title"] == "Weekly"
    assert datetime.fromisoformat(doc["meeting"]["started_at"]).timestamp() == STARTED
    assert [s["id"] for s in doc["segments"]] == ["s1", "s2", "s3"]
    assert doc["segments"][2]["words"][0]["text"].strip() == "Nous"

    rttm = (await client.get(f"{base}.rttm")).text.splitlines()
    fields = [line.split() for line in rttm]
    assert fields and all(len(f) == 10 and f[0] == "SPEAKER" for f in fields)
    assert {f[1] for f in fields} == {f"salle-a-{STAMP}"}
    assert {f[7] for f in fields} == {"Alice_Martin", "Bob_Durand"}
    assert all(float(f[3]) >= 0 and float(f[4]) > 0 for f in fields)

    md = (await client.get(f"{base}.md")).text
    assert md.startswith("# Weekly") and "**Bob Durand:** Oui, allons-y." in md


async def test_the_fr_tv_profile_selects_shorter_lines(
    client: httpx.AsyncClient, filled: dict[str, str]
) -> None:
    base = f"/api/meetings/{filled['weekly']}/minutes.srt"

    def longest(text: str) -> int:
        return max(len(line) for s in srt.parse(text) for line in s.content.splitlines())

    default = (await client.get(base)).text
    fr_tv = (await client.get(base, params={"profile": "fr-tv"})).text
    assert longest(default) > 36 >= longest(fr_tv)
    bad = await client.get(base, params={"profile": "cinema"})
    assert bad.status_code == 422 and "fr-tv" in bad.json()["detail"]


async def test_unknown_meetings_and_formats_are_404(
    client: httpx.AsyncClient, filled: dict[str, str]
) -> None:
    assert (await client.get("/api/meetings/nope")).status_code == 404
    assert (await client.get("/api/meetings/nope/minutes.srt")).status_code == 404
    r = await client.get(f"/api/meetings/{filled['weekly']}/minutes.docx")
    assert r.status_code == 404 and "srt" in r.json()["detail"]


# -- viewer tokens and the caption page --------------------------------------------------


def member_token(settings: Settings, room: str, identity: str = "alice") -> str:
    """A room member's LiveKit token, as a LiveKit front end holds it."""
    from livekit import api

    lk = settings.livekit
    return (api.AccessToken(lk.api_key, lk.api_secret.get_secret_value())
            .with_identity(identity).with_grants(api.VideoGrants(room_join=True, room=room))
            .to_jwt())


async def test_viewer_token_is_hidden_short_lived_and_receives_data_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, public_livekit_url="wss://meet.example.org")
    app = create_app(settings)
    member = {"Authorization": f"Bearer {member_token(settings, 'salle a')}"}
    async with client_for(app, member) as c:
        r = await c.get("/api/token", params={"room": "salle a"})
        missing = await c.get("/api/token")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["url"] == "wss://meet.example.org" and body["room"] == "salle a"
    claims = jwt.decode(
        body["token"], settings.livekit.api_secret.get_secret_value(), algorithms=["HS256"]
    )
    assert claims["sub"] == body["identity"] and claims["iss"] == settings.livekit.api_key
    assert claims["exp"] - claims["nbf"] <= 15 * 60
    video = claims["video"]
    assert video["roomJoin"] is True and video["room"] == "salle a" and video["hidden"] is True
    # Data and text streams reach a participant without canSubscribe (checked on the real
    # server by tests/integration/test_caption_control.py); media does not.
    for grant in ("canSubscribe", "canPublish", "canPublishData", "canUpdateOwnMetadata"):
        assert video.get(grant, False) is False, grant
    assert missing.status_code == 422
    # The viewer token is no credential here: it cannot be traded for a fresh one.
    async with client_for(app, {"Authorization": f"Bearer {body['token']}"}) as c:
        again = await c.get("/api/token", params={"room": "salle a"})
    assert again.status_code == 401


async def test_token_url_defaults_to_the_livekit_url(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/token", params={"room": "r"})).json()
    assert body["url"] == Settings().livekit.url


async def test_caption_page_and_scripts(tmp_path: Path) -> None:
    bundle_dir = tmp_path / "web" / "livekit-client"
    app = create_app(make_settings(tmp_path))
    async with client_for(app) as c:
        page = await c.get("/live/salle-a")
        script = await c.get("/static/live.js")
        missing = await c.get("/static/livekit-client.js")
        (bundle_dir / "dist").mkdir(parents=True)
        (bundle_dir / "dist" / "livekit-client.umd.js").write_text("var LivekitClient = {};")
        present = await c.get("/static/livekit-client.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/livekit-client.js">' in page.text
    assert '<script src="/static/live.js">' in page.text
    assert script.status_code == 200 and "registerTextStreamHandler" in script.text
    assert "lk.transcription" in script.text and "greffier.speaker_name" in script.text
    assert missing.status_code == 503 and "scripts/fetch-web-deps" in missing.text
    assert present.status_code == 200 and present.text == "var LivekitClient = {};"
    assert present.headers["content-type"].startswith("text/javascript")


# -- transcription jobs ------------------------------------------------------------------

FAKE_WAV = ("recording.wav", b"RIFF" + bytes(2000), "audio/wav")


def fake_minutes(job: Job) -> Minutes:
    return assemble_minutes(
        [seg("f1", Speaker("speaker", Path(job.filename).stem), 0.2, "Hello from the file.")],
        title=Path(job.filename).stem, started_at=datetime.fromtimestamp(STARTED, PARIS),
    )


async def wait_status(c: httpx.AsyncClient, job_id: str, *states: str) -> dict[str, Any]:
    for _ in range(200):
        body: dict[str, Any] = (await c.get(f"/api/transcriptions/{job_id}")).json()
        if body["status"] in states:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {states}: {body}")


def jobs_app(tmp_path: Path, runner: Runner, **service: Any) -> Any:
    return create_app(make_settings(tmp_path, **service), runner=runner)


async def test_a_job_runs_and_its_result_downloads(tmp_path: Path) -> None:
    seen: list[Job] = []

    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        seen.append(job)
        report(1.0, 2.0)
        return fake_minutes(job)

    app = jobs_app(tmp_path, runner)
    async with client_for(app) as c:
        r = await c.post("/api/transcriptions", files={"file": FAKE_WAV},
                         data={"diarize": "true", "language": "en"})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        assert r.headers["location"] == f"/api/transcriptions/{job_id}"
        assert r.json()["status"] in ("queued", "running", "done")
        body = await wait_status(c, job_id, "done", "failed")
        assert body["status"] == "done" and body["error"] is None
        assert body["duration_s"] == 2.0 and body["progress_s"] == 1.0
        srt_r = await c.get(body["result"]["srt"])
        vtt_r = await c.get(f"/api/transcriptions/{job_id}/result.vtt", params={"profile": "fr-tv"})
        bad = await c.get(f"/api/transcriptions/{job_id}/result.pdf")
        unknown = await c.get("/api/transcriptions/nope")
    app.state.greffier.close()
    assert seen[0].diarize is True and seen[0].language == "en"
    assert seen[0].filename == "recording.wav"
    assert not seen[0].path.exists(), "the upload is removed once the job ends"
    subs = list(srt.parse(srt_r.text))
    assert subs[0].content == "recording: Hello from the file."
    assert 'filename="recording.srt"' in srt_r.headers["content-disposition"]
    assert webvtt.from_string(vtt_r.text).captions[0].voice == "recording"
    assert bad.status_code == 404 and unknown.status_code == 404


async def test_a_failing_job_says_why_and_has_no_result(tmp_path: Path) -> None:
    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        raise AudioFormatError("cannot decode recording.wav: Invalid data",
                               hint="give a file FFmpeg can read")

    app = jobs_app(tmp_path, runner)
    async with client_for(app) as c:
        job_id = (await c.post("/api/transcriptions", files={"file": FAKE_WAV})).json()["id"]
        body = await wait_status(c, job_id, "done", "failed")
        result = await c.get(f"/api/transcriptions/{job_id}/result.srt")
    app.state.greffier.close()
    assert body["status"] == "failed" and "FFmpeg" in body["error"]
    assert result.status_code == 409 and "failed" in result.json()["detail"]


async def test_an_upload_ffmpeg_cannot_read_fails_without_loading_a_model(
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(tmp_path))  # the real runner: decoding comes first
    async with client_for(app) as c:
        r = await c.post("/api/transcriptions", files={
            "file": ("notes.mp3", b"these are not the bytes of a recording " * 50,
                     "application/octet-stream"),
        })
        assert r.status_code == 202
        body = await wait_status(c, r.json()["id"], "done", "failed")
    app.state.greffier.close()
    assert body["status"] == "failed"
    assert "not audio or video FFmpeg can read" in body["error"]
    assert "notes.mp3" in body["error"]


async def test_malformed_uploads_are_refused(tmp_path: Path) -> None:
    calls: list[Job] = []

    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        calls.append(job)
        return fake_minutes(job)

    app = jobs_app(tmp_path, runner, max_upload_mb=1)
    async with client_for(app) as c:
        no_file = await c.post("/api/transcriptions", data={"diarize": "false"})
        text = await c.post("/api/transcriptions",
                            files={"file": ("notes.txt", b"hello", "text/plain")})
        image = await c.post("/api/transcriptions",
                             files={"file": ("photo.png", b"\x89PNG", "image/png")})
        bad_lang = await c.post("/api/transcriptions", files={"file": FAKE_WAV},
                                data={"language": "../etc"})
        over = await c.post("/api/transcriptions",  # over the limit, inside the form slack
                            files={"file": ("big.wav", bytes(1_010_000), "audio/wav")})
        huge = await c.post("/api/transcriptions",  # refused on Content-Length alone
                            files={"file": ("huge.wav", bytes(3_000_000), "audio/wav")})
    app.state.greffier.close()
    assert no_file.status_code == 422
    assert any(e["loc"][-1] == "file" for e in no_file.json()["detail"])
    assert text.status_code == 415 and "text/plain" in text.json()["detail"]
    assert image.status_code == 415
    assert bad_lang.status_code == 422
    assert over.status_code == 413 and "MAX_UPLOAD_MB" in over.json()["detail"]
    assert huge.status_code == 413 and "MAX_UPLOAD_MB" in huge.json()["detail"]
    assert calls == []
    assert not any((tmp_path / "data" / "uploads").glob("*/*")), "refused uploads are not kept"


async def test_a_full_queue_answers_429(tmp_path: Path) -> None:
    release = threading.Event()

    def runner(job: Job, report: Callable[[float, float], None]) -> Minutes:
        release.wait(10)
        return fake_minutes(job)

    app = jobs_app(tmp_path, runner, max_queued_jobs=1)
    async with client_for(app) as c:
        first = (await c.post("/api/transcriptions", files={"file": FAKE_WAV})).json()["id"]
        await wait_status(c, first, "running")
        second = await c.post("/api/transcriptions", files={"file": FAKE_WAV})
        third = await c.post("/api/transcriptions", files={"file": FAKE_WAV})
        assert second.status_code == 202 and second.json()["queue_position"] == 0
        assert third.status_code == 429 and "retry" in third.json()["detail"]
        assert "retry-after" in third.headers
        release.set()
        done = await wait_status(c, second.json()["id"], "done", "failed")
    app.state.greffier.close()
    assert done["status"] == "done"
