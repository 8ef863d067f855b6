"""The live caption page in a real browser: headless Chromium (Debian's, driven by playwright,
which downloads nothing) opens ``/live/<room>`` from ``greffier serve`` running with uvicorn,
joins the room on the real LiveKit server, and shows the captions the real worker publishes for
a participant speaking a real recording. The same meeting is then read back from the worker's
transcript store through the minutes API.

Needs ``/usr/bin/chromium`` (``scripts/install-browser``) and the livekit-client bundle
(``scripts/fetch-web-deps``, run here: it returns at once when the bundle is there).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import srt
import uvicorn

from greffier.core.audio import SAMPLE_RATE
from greffier.core.config import LiveKitSettings, Settings, StoreSettings
from greffier.core.text import normalize_text, word_error_rate
from greffier.rtc.client import connect, dispatch_agent, publish_audio
from greffier.service.app import create_app
from tests.conftest import Clip
from tests.integration.rooms import captioners, clip_audio, room_name, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
CLIP = "lhotse_librispeech_2412-153948-0000"
SPEAKER = "Alice Martin"
FINALS_JS = """els => els.map(e => ({
    segment: e.dataset.segmentId,
    speaker: e.querySelector('.speaker').textContent,
    text: e.querySelector('.text').textContent,
}))"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def service(livekit: LiveKitSettings, worker_data: Path, settings: Settings,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``greffier serve`` on a free loopback port (uvicorn in a thread), reading the worker's
    transcript store."""
    fetched = subprocess.run([str(REPO / "scripts" / "fetch-web-deps")], capture_output=True,
                             text=True, timeout=300)
    assert fetched.returncode == 0, f"scripts/fetch-web-deps failed:\n{fetched.stderr}"
    assert Path(CHROMIUM).is_file(), "no /usr/bin/chromium: run scripts/install-browser"
    app_settings = settings.model_copy(update={
        "data_dir": tmp_path_factory.mktemp("service"),
        "store": StoreSettings(url=f"sqlite:///{worker_data / 'greffier.db'}"),
        "livekit": livekit,
    })
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_app(app_settings), host="127.0.0.1", port=port, log_level="warning",
        log_config=None,
    ))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


async def test_the_caption_page_shows_a_speakers_final_captions(
    livekit: LiveKitSettings, worker: Any, agent_name: str, clips: dict[str, Clip], service: str
) -> None:
    from playwright.async_api import async_playwright

    room = room_name()
    # Alice is in the room first: the captioner leaves a room where nobody visible is.
    alice = await connect(livekit, identity="alice", room=room, name=SPEAKER,
                          auto_subscribe=False)
    await dispatch_agent(livekit, room, agent_name)
    assert await wait_for(lambda: _has_captioner(livekit, room)), "no captioner joined"
    console: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            await page.goto(f"{service}/live/{room}")
            try:
                await page.wait_for_function(
                    "document.body.dataset.state === 'connected'", timeout=20_000
                )
            except Exception as e:
                body = await page.inner_text("body")
                raise AssertionError(f"the page did not connect: {body}\n{console}") from e

            await publish_audio(alice, clip_audio(clips, CLIP), SAMPLE_RATE)
            reference = clips[CLIP].text
            finals: list[dict[str, str]] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                finals = await page.eval_on_selector_all(".caption.final", FINALS_JS)
                heard = " ".join(f["text"] for f in finals if f["speaker"] == SPEAKER)
                if word_error_rate([reference], [heard]).wer <= 0.15:
                    break
                await asyncio.sleep(0.5)
            interims = await page.eval_on_selector_all(".caption.interim", FINALS_JS)
        finally:
            await browser.close()
            await alice.disconnect()

    dump = f"finals: {finals}\ninterims: {interims}\nconsole: {console}"
    assert finals, f"no final caption on the page\n{dump}"
    assert {f["speaker"] for f in finals} == {SPEAKER}, dump
    heard = " ".join(f["text"] for f in finals)
    assert word_error_rate([reference], [heard]).wer <= 0.25, dump
    assert set(normalize_text(reference).split()[:5]) <= set(normalize_text(heard).split()), dump
    assert len({f["segment"] for f in finals}) == len(finals), "one line per segment"

    # The worker stored the same finals: they come back as minutes through the API.
    async with httpx.AsyncClient(base_url=service, timeout=10) as c:
        meetings = (await c.get("/api/meetings", params={"room": room})).json()["meetings"]
        assert len(meetings) == 1, meetings
        subs = list(srt.parse((await c.get(f"/api/meetings/{meetings[0]['id']}/minutes.srt"))
                              .text))
    assert subs and subs[0].content.startswith(f"{SPEAKER}: ")
    stored = " ".join(s.content.replace("\n", " ") for s in subs).removeprefix(f"{SPEAKER}: ")
    assert word_error_rate([heard], [stored]).wer <= 0.1, (stored, heard)


async def _has_captioner(lk: LiveKitSettings, room: str) -> bool:
    return bool(await captioners(lk, room))
