"""The live caption page in a real browser: headless Chromium (Debian's, driven by playwright,
which downloads nothing) opens ``/live/<room>#token=<member token>`` from ``greffier serve``
running with uvicorn, trades the member's LiveKit token for a viewer token, joins the room on
the real LiveKit server, and shows the captions the real worker publishes for a participant
speaking a real recording. Along the way: a setting changed with the keyboard applies and
survives a reload, the screen-reader live region gets the finals and never an interim, a token
for another room gets a clear refusal and no captions, and the meeting is read back from the
worker's store through the minutes API with the member's token. A screenshot is kept in
``$GREFFIER_ARTIFACTS_DIR`` (default ``var/artifacts``).

Needs ``/usr/bin/chromium`` (``scripts/install-browser``) and the livekit-client bundle
(``scripts/fetch-web-deps``, run here: it returns at once when the bundle is there).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from greffier.core.audio import SAMPLE_RATE
from greffier.core.config import LiveKitSettings, Settings, StoreSettings
from greffier.core.text import normalize_text, word_error_rate
from greffier.livekit.client import connect, dispatch_agent, publish_audio
from greffier.livekit.tokens import make_token
from greffier.service.app import create_app
from tests.conftest import Clip
from tests.integration.rooms import captioners, clip_audio, room_name, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLIP = "lhotse_librispeech_2412-153948-0000"
SPEAKER = "Alice <b>Martin</b>"
"""Markup in a name must show as text, never become an element."""
LARGE_PX = "36px"
"""The "large" text size, 2.25 rem, at the browser's default 16 px root size."""
YELLOW = "rgb(255, 255, 0)"

SNAPSHOT_JS = """() => {
    const lines = [...document.querySelectorAll('#captions .caption')].map(e => ({
        segment: e.dataset.segmentId,
        final: e.classList.contains('final'),
        speaker: e.querySelector('.speaker').textContent,
        text: e.querySelector('.text').textContent,
        italic: getComputedStyle(e.querySelector('.text')).fontStyle === 'italic',
        hidden: e.getAttribute('aria-hidden') === 'true',
        markup: e.querySelector('.speaker *, .text *') !== null,
    }));
    const region = document.getElementById('announcer');
    return {
        lines,
        live: [...region.children].map(e => ({segment: e.dataset.segmentId,
                                              text: e.textContent})),
        polite: region.getAttribute('aria-live'),
    };
}"""
RECORD_JS = f"""() => {{
    // Every change of the captions or of the live region, as the page is after it.
    const snapshot = {SNAPSHOT_JS};
    window.captionLog = [];
    const observer = new MutationObserver(() => window.captionLog.push(snapshot()));
    for (const id of ['captions', 'announcer']) {{
        observer.observe(document.getElementById(id),
                         {{subtree: true, childList: true, characterData: true,
                          attributes: true}});
    }}
}}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("GREFFIER_ARTIFACTS_DIR") or REPO / "var" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def service(
    livekit: LiveKitSettings,
    worker_data: Path,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """``greffier serve`` on a free loopback port (uvicorn in a thread), reading the worker's
    transcript store."""
    fetched = subprocess.run(
        [str(REPO / "scripts" / "fetch-web-deps")], capture_output=True, text=True, timeout=300
    )
    assert fetched.returncode == 0, f"scripts/fetch-web-deps failed:\n{fetched.stderr}"
    assert Path(CHROMIUM).is_file(), "no /usr/bin/chromium: run scripts/install-browser"
    app_settings = settings.model_copy(
        update={
            "data_dir": tmp_path_factory.mktemp("service"),
            "store": StoreSettings(url=f"sqlite:///{worker_data / 'greffier.db'}"),
            "livekit": livekit,
        }
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app_settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            log_config=None,
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


async def _state(page: Any, state: str, console: list[str], timeout_ms: int = 20_000) -> None:
    try:
        await page.wait_for_function(
            f"document.body.dataset.state === '{state}'", timeout=timeout_ms
        )
    except Exception as e:
        body = await page.inner_text("body")
        raise AssertionError(f"the page did not reach {state!r}: {body}\n{console}") from e


async def _tab_to(page: Any, selector: str, limit: int = 12) -> None:
    """Press Tab until the element matching ``selector`` has the focus."""
    for _ in range(limit):
        if await page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


async def _caption_style(page: Any) -> dict[str, str]:
    return await page.evaluate("""() => {
        const s = getComputedStyle(document.getElementById('captions'));
        return {size: s.fontSize, colour: s.color, position: document.body.dataset.position};
    }""")


async def _box(page: Any) -> dict[str, float]:
    return await page.evaluate(
        "() => document.getElementById('captions').getBoundingClientRect().toJSON()"
    )


async def test_a_member_sees_live_captions_with_their_settings(
    livekit: LiveKitSettings, worker: Any, agent_name: str, clips: dict[str, Clip], service: str
) -> None:
    from playwright.async_api import async_playwright

    room = room_name()
    member = make_token(
        livekit,
        identity="carol",
        room=room,
        name="Carol",
        can_publish=False,
        can_publish_data=False,
        ttl_s=600,
    )
    stranger = make_token(
        livekit,
        identity="mallory",
        room=room_name(),
        name="Mallory",
        can_publish=False,
        can_publish_data=False,
        ttl_s=600,
    )
    # Alice is in the room first: the captioner leaves a room where nobody visible is.
    alice = await connect(livekit, identity="alice", room=room, name=SPEAKER, auto_subscribe=False)
    await dispatch_agent(livekit, room, agent_name)
    assert await wait_for(lambda: _has_captioner(livekit, room)), "no captioner joined"
    console: list[str] = []
    snapshots: list[dict[str, Any]] = []
    shots = artifacts_dir()
    shot = shots / "caption-page.png"
    interim_shot = False
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 720})
            page = await context.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            await page.goto(f"{service}/live/{room}#token={member}")
            await _state(page, "connected", console)
            assert "token" not in page.url, "the member token stayed in the address bar"

            # Text size with the keyboard: Tab to the settings button, open, arrow to "large".
            await _tab_to(page, "#settings-toggle")
            await page.keyboard.press("Enter")
            await _tab_to(page, "input[name=size]")
            focus = await page.evaluate(
                "() => getComputedStyle(document.activeElement).outlineStyle"
            )
            assert focus != "none", "the focused control shows no focus ring"
            assert await page.evaluate("() => document.activeElement.value") == "medium"
            await page.keyboard.press("ArrowDown")
            # Font colour: Tab to the select and type the first letter of a colour.
            await _tab_to(page, "#font-colour")
            await page.keyboard.press("y")
            # Position: the captions move to the top of the window, then back to the bottom.
            await _tab_to(page, "input[name=position]")
            await page.keyboard.press("ArrowDown")
            assert (await _caption_style(page))["position"] == "top"
            assert (await _box(page))["top"] < 120
            await page.keyboard.press("ArrowUp")
            assert (await _box(page))["bottom"] > 720 - 40
            await page.screenshot(path=str(shots / "caption-page-settings.png"))
            await page.keyboard.press("Escape")
            assert await page.evaluate("() => document.activeElement.id") == "settings-toggle"
            assert await page.is_hidden("#settings")
            style = await _caption_style(page)
            assert (style["size"], style["colour"]) == (LARGE_PX, YELLOW), style

            # Remembered: after a reload (the token now comes from this tab's session) the
            # page reconnects with the same settings.
            await page.reload()
            await _state(page, "connected", console)
            assert await _caption_style(page) == style
            assert await page.is_checked("input[name=size][value=large]")

            # Another room's token, pasted into the form: refused, clearly, and no captions.
            intruder = await context.new_page()
            await intruder.goto(f"{service}/live/{room}")
            await _state(intruder, "need-token", console)
            for token, says in (("not-a-token", "not accepted"), (stranger, "another room")):
                await intruder.focus("#token-input")
                await intruder.keyboard.insert_text(token)
                await intruder.keyboard.press("Enter")
                await intruder.wait_for_function(
                    "s => document.getElementById('notice').textContent.includes(s)", arg=says
                )
                assert await intruder.evaluate("() => document.body.dataset.state") == "denied"
                assert await intruder.is_visible("#token-form")

            await page.evaluate(RECORD_JS)
            speaking = asyncio.create_task(
                publish_audio(alice, clip_audio(clips, CLIP), SAMPLE_RATE)
            )
            reference = clips[CLIP].text
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                now = await page.evaluate(SNAPSHOT_JS)
                heard = " ".join(x["text"] for x in now["lines"] if x["final"])
                if speaking.done() and word_error_rate([reference], [heard]).wer <= 0.15:
                    break
                kinds = {x["final"] for x in now["lines"]}
                if not interim_shot and kinds == {True, False}:  # a final, and words to come
                    interim_shot = True
                    await page.screenshot(path=str(shots / "caption-page-interim.png"))
                await asyncio.sleep(0.25)
            await speaking
            await asyncio.sleep(1.0)
            snapshots = [
                *await page.evaluate("() => window.captionLog"),
                await page.evaluate(SNAPSHOT_JS),
            ]
            await page.screenshot(path=str(shot))
            print(f"caption page screenshots: {shot} (and -settings, -interim)")
            intruder_lines = await intruder.locator(".caption").count()
            intruder_state = await intruder.evaluate("() => document.body.dataset.state")
        finally:
            await browser.close()
            await alice.disconnect()

    last = snapshots[-1]
    finals = [x for x in last["lines"] if x["final"]]
    interims_seen = [x for s in snapshots for x in s["lines"] if not x["final"]]
    dump = f"last: {last}\ninterims: {interims_seen[:5]}\nconsole: {console}"
    assert finals, f"no final caption on the page\n{dump}"
    assert {x["speaker"] for x in finals} == {SPEAKER}, dump
    assert not any(x["markup"] for s in snapshots for x in s["lines"]), "markup became HTML"
    heard = " ".join(x["text"] for x in finals)
    assert word_error_rate([reference], [heard]).wer <= 0.25, dump
    assert set(normalize_text(reference).split()[:5]) <= set(normalize_text(heard).split()), dump
    assert len({x["segment"] for x in last["lines"]}) == len(last["lines"]), "one line a segment"

    # Interims are visibly provisional and kept from screen readers; the polite live region
    # holds exactly the finals, each as "speaker: text", after every change of the page.
    assert interims_seen, f"no interim was ever shown\n{dump}"
    assert all(x["italic"] and x["hidden"] for x in interims_seen), interims_seen
    assert not any(x["italic"] or x["hidden"] for x in finals), finals
    assert last["polite"] == "polite"
    for snap in snapshots:
        final_text = {
            x["segment"]: f"{x['speaker']}: {x['text']}" for x in snap["lines"] if x["final"]
        }
        assert {e["segment"]: e["text"] for e in snap["live"]} == final_text, snap
    assert (intruder_lines, intruder_state) == (0, "denied")

    # The worker stored the same finals: the member reads them back as the meeting's minutes.
    auth = {"Authorization": f"Bearer {member}"}
    async with httpx.AsyncClient(base_url=service, timeout=10, headers=auth) as c:
        meetings = (await c.get("/api/meetings", params={"room": room})).json()["meetings"]
        assert len(meetings) == 1, meetings
        doc = (await c.get(f"/api/meetings/{meetings[0]['id']}/minutes.json")).json()
    assert {s["speaker"]["display"] for s in doc["segments"]} == {SPEAKER}, doc["segments"]
    stored = " ".join(s["text"] for s in doc["segments"])
    assert word_error_rate([heard], [stored]).wer <= 0.1, (stored, heard)


async def _has_captioner(lk: LiveKitSettings, room: str) -> bool:
    return bool(await captioners(lk, room))
