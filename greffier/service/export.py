"""Minutes as downloads: each format's media type, a safe file name, the response (the text
itself is ``subtitles.formats.render``'s)."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi.responses import Response

from greffier.service.schemas import ErrorOut
from greffier.subtitles.cues import CueRules
from greffier.subtitles.formats import FORMATS, render
from greffier.subtitles.minutes import Minutes

MEDIA_TYPES = {
    "md": "text/markdown; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
    "rttm": "text/plain; charset=utf-8",
}
assert set(MEDIA_TYPES) == set(FORMATS)

MINUTES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {t.split(";")[0]: {} for t in MEDIA_TYPES.values()}},
    404: {"model": ErrorOut, "description": "no such record, or an unknown format"},
    422: {"model": ErrorOut, "description": "an unknown caption profile"},
}
"""OpenAPI responses of a minutes download (its ``?profile=``: ``state.CaptionRules``)."""


def local_time(unix: float) -> datetime:
    """A timezone-aware datetime of ``unix`` in the server's zone (``TZ`` sets it)."""
    return datetime.fromtimestamp(unix).astimezone()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, fallback: str = "minutes") -> str:
    """ASCII letters, digits, ``.``, ``_`` and ``-`` only (accents dropped, runs of others
    become ``-``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _UNSAFE.sub("-", ascii_text).strip("-.") or fallback


def download_stem(room: str, started_at: datetime) -> str:
    """``<room>-<YYYYMMDD-HHMM>``."""
    return f"{safe_name(room, 'meeting')}-{started_at.strftime('%Y%m%d-%H%M')}"


def content_disposition(filename: str) -> str:
    """An attachment header with an ASCII name and the RFC 5987 UTF-8 form."""
    ascii_name = safe_name(filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def check_format(fmt: str) -> None:
    """404 unless ``fmt`` is one of the five minutes formats."""
    from fastapi import HTTPException

    if fmt not in FORMATS:
        raise HTTPException(404, detail=f"no format {fmt!r}; known: {', '.join(FORMATS)}")


def download(minutes: Minutes, fmt: str, rules: CueRules, stem: str) -> Response:
    """The minutes rendered as ``fmt``, as a file download named ``<stem>.<fmt>``."""
    return Response(
        render(minutes, fmt, rules, stem),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": content_disposition(f"{stem}.{fmt}")},
    )
