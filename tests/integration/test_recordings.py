"""Transcription of recordings with the real models: ``greffier transcribe`` as a command (the
five files, their accuracy, diarization of two speakers, a missing file) and the service's
upload endpoint in-process.

Measured on this machine (2 CPU cores, Whisper base int8, cores otherwise idle): jfk.wav (11 s)
takes about 4 s as a command, model load included (WER 0.0 on the SRT); the 22 s two-speaker
file with ``--diarize`` about 18 s (2 speakers, the change in the 1 s gap), though pyannote
slows down up to tenfold when other work holds the cores; the upload test about 3 s.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
import srt
import webvtt
from pydantic import SecretStr

from greffier.core.audio import SAMPLE_RATE, float32_to_pcm16, read_audio
from greffier.core.config import ServiceSettings, Settings, StoreSettings
from greffier.core.text import word_error_rate
from greffier.service.app import create_app
from greffier.subtitles.formats import FORMATS, minutes_from_json
from tests.conftest import Clip

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FIRST, SECOND = "ljspeech_LJ001-0001", "lhotse_librispeech_2412-153948-0000"


def transcribe(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greffier", "transcribe", *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def srt_text(path: Path, speaker_names: list[str]) -> str:
    """The words of an SRT file, speaker prefixes removed."""
    out = []
    for sub in srt.parse(path.read_text(encoding="utf-8")):
        content = sub.content.replace("\n", " ")
        for name in speaker_names:
            content = content.removeprefix(f"{name}: ")
        out.append(content)
    return " ".join(out)


def write_wav(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(float32_to_pcm16(audio).tobytes())


def test_transcribe_writes_five_files_that_parse(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["jfk"]
    audio = tmp_path / "jfk.wav"
    shutil.copyfile(clip.audio, audio)
    done = transcribe(audio)
    assert done.returncode == 0, done.stderr
    paths = [tmp_path / f"jfk.{fmt}" for fmt in FORMATS]
    assert done.stdout.split() == [str(p) for p in paths]
    assert all(p.is_file() for p in paths)

    wer = word_error_rate([clip.text], [srt_text(paths[1], ["jfk"])])
    assert wer.wer <= 0.15, f"WER {wer.wer:.1%}: {paths[1].read_text()}"

    minutes = minutes_from_json((tmp_path / "jfk.json").read_text(encoding="utf-8"))
    assert minutes.title == "jfk" and minutes.participants == ("jfk",)
    assert minutes.duration_s == pytest.approx(11.0, abs=1.0)
    assert all(s.words for s in minutes.segments)
    captions = webvtt.read(str(tmp_path / "jfk.vtt")).captions
    assert captions and {c.voice for c in captions} == {"jfk"}
    assert (tmp_path / "jfk.md").read_text(encoding="utf-8").startswith("# jfk")
    rttm = [line.split() for line in (tmp_path / "jfk.rttm").read_text().splitlines()]
    assert rttm and all(f[0] == "SPEAKER" and f[7] == "jfk" for f in rttm)


def test_transcribe_with_diarization_finds_both_speakers(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    gap = np.zeros(SAMPLE_RATE, np.float32)
    first, second = read_audio(clips[FIRST].audio), read_audio(clips[SECOND].audio)
    audio = tmp_path / "two.wav"
    write_wav(audio, np.concatenate([first, gap, second]))
    out_dir = tmp_path / "minutes"
    done = transcribe(audio, "--diarize", "--format", "json,rttm,srt", "--output-dir", out_dir)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["two.json", "two.rttm", "two.srt"]

    minutes = minutes_from_json((out_dir / "two.json").read_text(encoding="utf-8"))
    assert minutes.participants == ("Speaker 1", "Speaker 2")
    assert {t.speaker for t in minutes.turns} == {"1", "2"}
    change = first.size / SAMPLE_RATE + 0.5
    for s in minutes.segments:  # each segment on the right side of the change
        assert s.speaker.identity == ("speaker-1" if s.end <= change + 0.5 else "speaker-2"), s
    rttm = [line.split() for line in (out_dir / "two.rttm").read_text().splitlines()]
    assert {f[7] for f in rttm} == {"1", "2"}

    words = srt_text(out_dir / "two.srt", ["Speaker 1", "Speaker 2"])
    reference = f"{clips[FIRST].text} {clips[SECOND].text}"
    assert word_error_rate([reference], [words]).wer <= 0.15, words


def test_a_missing_file_fails_clearly_and_the_others_are_done(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    audio = tmp_path / "short.wav"
    shutil.copyfile(clips["ljspeech_LJ001-0002"].audio, audio)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio at all " * 100)
    missing = tmp_path / "nowhere.wav"
    done = transcribe(missing, junk, audio, "--format", "srt")
    assert done.returncode != 0
    assert f"{missing}: no such file" in done.stderr
    assert f"{junk}: not an audio or video file" in done.stderr
    assert "2 of 3 files failed" in done.stderr
    assert done.stdout.split() == [str(tmp_path / "short.srt")]

    bad_format = transcribe(audio, "--format", "srt,docx")
    assert bad_format.returncode == 2 and "docx" in bad_format.stderr
    assert "md, srt, vtt, json, rttm" in bad_format.stderr


async def test_the_upload_endpoint_transcribes_a_recording(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["ljspeech_LJ001-0001"]
    key = "batch-test-operator-key-0123"
    settings = Settings(
        data_dir=tmp_path, store=StoreSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
        service=ServiceSettings(api_keys=[SecretStr(key)]),
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers={"Authorization": f"Bearer {key}"}) as c:
        r = await c.post(
            "/api/transcriptions",
            files={"file": ("exhibition.wav", clip.audio.read_bytes(), "audio/wav")},
            data={"language": "en"},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        for _ in range(600):
            status = (await c.get(f"/api/transcriptions/{job_id}")).json()
            if status["status"] in ("done", "failed"):
                break
            await asyncio.sleep(0.2)
        assert status["status"] == "done", status
        assert status["duration_s"] == pytest.approx(clip.duration, abs=0.1)
        doc = json.loads((await c.get(status["result"]["json"])).text)
        subs = list(srt.parse((await c.get(status["result"]["srt"])).text))
    app.state.greffier.close()
    text = " ".join(s["text"] for s in doc["segments"])
    assert word_error_rate([clip.text], [text]).wer <= 0.15, text
    assert doc["meeting"]["title"] == "exhibition"
    assert {s["speaker"]["name"] for s in doc["segments"]} == {"exhibition"}
    assert subs[0].content.startswith("exhibition: ")
