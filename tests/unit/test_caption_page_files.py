"""The caption page's files, read as a reviewer would: server text never parsed as HTML, no
inline script or handler, nothing loaded from elsewhere, every control labelled, one polite live
region. (Its behaviour in a browser is tested in tests/integration/test_caption_page.py.)"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

STATIC = Path(__file__).resolve().parents[2] / "greffier" / "service" / "static"


class Page(HTMLParser):
    """The elements of a page: (tag, attributes, text inside a script)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False
        self._label_depth = 0
        self.wrapped: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.elements.append((tag, a))
        self._in_script = tag == "script"
        if tag == "label":
            self._label_depth += 1
        elif self._label_depth and tag in ("input", "select", "textarea"):
            self.wrapped.add(a.get("id") or f"{a.get('name')}={a.get('value')}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        elif tag == "label":
            self._label_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def parse() -> Page:
    page = Page()
    page.feed((STATIC / "live.html").read_text(encoding="utf-8"))
    return page


def page_sources() -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted(STATIC.iterdir())
        if p.suffix in (".html", ".js", ".css")
    }


def test_no_server_text_is_parsed_as_html() -> None:
    script = (STATIC / "live.js").read_text(encoding="utf-8")
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "DOMParser",
        "createContextualFragment",
    ):
        assert sink not in script, f"live.js uses {sink}"
    assert "textContent" in script


def test_no_inline_script_no_handler_attribute_nothing_from_elsewhere() -> None:
    page = parse()
    assert not page.script_text, "inline script in live.html"
    scripts = [a.get("src") for tag, a in page.elements if tag == "script"]
    assert scripts == ["/static/livekit-client.js", "/static/live.js"]
    handlers = [(tag, k) for tag, a in page.elements for k in a if k.startswith("on")]
    assert not handlers, handlers
    for name, text in page_sources().items():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), (
            f"{name} refers to another site"
        )
        assert "@import" not in text and "url(http" not in text, name


def test_every_control_has_a_label_and_captions_have_one_polite_live_region() -> None:
    page = parse()
    labelled = {a.get("for") for tag, a in page.elements if tag == "label"} | page.wrapped
    controls = [a for tag, a in page.elements if tag in ("input", "select", "textarea")]
    assert len(controls) >= 8
    for a in controls:
        key = a.get("id") or f"{a.get('name')}={a.get('value')}"
        assert key in labelled, f"control without a label: {a}"
    buttons = [a for tag, a in page.elements if tag == "button"]
    assert all(a.get("type") in ("button", "submit") for a in buttons), buttons
    live = [a for _, a in page.elements if a.get("aria-live")]
    assert [(a.get("id"), a.get("aria-live")) for a in live] == [("announcer", "polite")]
    assert not [a for _, a in page.elements if a.get("role") in ("log", "marquee")]


def test_the_token_leaves_the_address_bar_and_settings_mirror_meet() -> None:
    script = (STATIC / "live.js").read_text(encoding="utf-8")
    assert "history.replaceState" in script and "location.hash" in script
    assert "Authorization: `Bearer ${memberToken}`" in script
    sizes = dict(re.findall(r'(small|medium|large): "([0-9.]+rem)"', script))
    assert sizes == {"small": "0.875rem", "medium": "1.5rem", "large": "2.25rem"}
    assert "localStorage" in script
