"""``POST /v1/audio/transcriptions`` on the running service (uvicorn on a loopback port, real
models, real store): the official ``openai`` client (json, verbose_json with words, srt) with
the shipped ``tiny.en`` model on a shared English clip; a request built as La Suite Meet's
summary service builds it (``requests``, ``diarized_json``, default model) on pyannote's
two-speaker recording, its speakers checked against the reference RTTM; no key: 401; bytes
that are no audio: 400."""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jiwer
import openai
import pytest
import requests
import srt
import uvicorn
from openai.types.audio import TranscriptionDiarized, TranscriptionVerbose
from pydantic import SecretStr

from greffier.core.config import ServiceSettings, Settings, StoreSettings
from greffier.service.app import create_app
from tests.conftest import Clip

pytestmark = pytest.mark.integration

KEY = "integration-operator-key-0123456789"
MAX_WER = 0.25
"""``tiny.en`` hears this clip with a word or two wrong (``ask`` as ``S.``)."""


@pytest.fixture(scope="module")
def service(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service's base URL: ``greffier serve``'s app under uvicorn, in a thread."""
    tmp = tmp_path_factory.mktemp("openai-service")
    app = create_app(settings.model_copy(update={
        "data_dir": tmp / "data",
        "store": StoreSettings(url=f"sqlite:///{tmp / 'store.db'}"),
        "service": ServiceSettings(api_keys=[SecretStr(KEY)], web_assets_dir=tmp / "web"),
    }))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def words_of(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


def wer(reference: str, text: str) -> float:
    return float(jiwer.wer(words_of(reference), words_of(text)))


def test_the_openai_client_gets_json_verbose_json_and_srt(
    service: str, clips: dict[str, Clip],
) -> None:
    client = openai.OpenAI(api_key=KEY, base_url=f"{service}/v1", max_retries=0, timeout=120)
    audio, said = clips["jfk"].audio, clips["jfk"].text
    with audio.open("rb") as f:
        plain = client.audio.transcriptions.create(model="tiny.en", file=f, language="en")
    with audio.open("rb") as f:
        verbose = client.audio.transcriptions.create(
            model="tiny.en", file=f, language="en", response_format="verbose_json",
            timestamp_granularities=["word"])
    with audio.open("rb") as f:
        subrip = client.audio.transcriptions.create(model="tiny.en", file=f,
                                                    response_format="srt")
    assert wer(said, plain.text) <= MAX_WER, plain.text
    assert isinstance(verbose, TranscriptionVerbose)
    assert verbose.language == "english" and verbose.duration == pytest.approx(11.0, abs=0.1)
    assert words_of(verbose.text) == words_of(plain.text), "one transcript, two formats"
    assert verbose.words is not None and verbose.segments
    assert words_of(" ".join(w.word for w in verbose.words)) == words_of(verbose.text)
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts) and all(w.start <= w.end for w in verbose.words)
    assert 0.0 <= starts[0] and verbose.words[-1].end <= verbose.duration + 0.5
    cues = list(srt.parse(subrip))
    assert cues and words_of(" ".join(c.content for c in cues)) == words_of(plain.text)
    assert cues[-1].end.total_seconds() <= 11.5


def reference_turns(rttm: Path) -> list[tuple[float, float, str]]:
    turns = []
    for line in rttm.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, length = float(parts[3]), float(parts[4])
            turns.append((start, start + length, parts[7]))
    return turns


def test_a_request_built_like_meets_gets_the_two_speakers(service: str) -> None:
    spec = importlib.util.find_spec("pyannote.audio")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "sample"
    with (folder / "sample.wav").open("rb") as f:
        # As src/summary/summary/core/celery_worker.py posts it.
        response = requests.post(
            f"{service}/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {KEY}"},
            files={"file": f},
            data={"model": "whisper-1", "language": "en",
                  "timestamp_granularities": ["word", "segment"],
                  "response_format": "diarized_json"},
            timeout=(60, 600),
        )
    assert response.status_code == 200, response.text
    body = response.json()
    body.pop("usage", None)  # Meet drops it
    result = TranscriptionDiarized.model_validate(body)
    segments = result.segments
    assert segments and all(s.text.strip() and 0 <= s.start < s.end <= 30.5 for s in segments)
    assert len({s.speaker for s in segments}) >= 2
    # Each segment's reference speaker (most overlap); letters must map onto them.
    turns = reference_turns(folder / "sample.rttm")
    votes: dict[str, dict[str, float]] = {}
    for s in segments:
        overlap: dict[str, float] = {}
        for start, end, who in turns:
            overlap[who] = overlap.get(who, 0.0) + max(0.0, min(end, s.end) - max(start, s.start))
        if max(overlap.values()) > 0:
            who = max(overlap, key=lambda k: overlap[k])
            votes.setdefault(s.speaker, {}).setdefault(who, 0.0)
            votes[s.speaker][who] += s.end - s.start
    mapped = {letter: max(v, key=lambda k: v[k]) for letter, v in votes.items()}
    assert len(set(mapped.values())) == 2, f"both reference speakers are found: {mapped}"
    agreed = sum(v[mapped[letter]] for letter, v in votes.items())
    total = sum(sum(v.values()) for v in votes.values())
    assert agreed / total >= 0.8, f"speakers agree with the reference on {agreed / total:.0%}"


def test_no_key_is_401_and_no_audio_is_400(service: str) -> None:
    url = f"{service}/v1/audio/transcriptions"
    anonymous = requests.post(url, files={"file": ("a.wav", b"RIFF" + bytes(64))},
                              data={"model": "whisper-1"}, timeout=30)
    garbage = requests.post(url, headers={"Authorization": f"Bearer {KEY}"},
                            files={"file": ("call.mp3", b"\x00\xffnot audio at all" * 500)},
                            data={"model": "whisper-1", "response_format": "diarized_json"},
                            timeout=30)
    assert anonymous.status_code == 401
    assert garbage.status_code == 400, garbage.text
    assert garbage.json()["error"]["code"] == "invalid_file"
