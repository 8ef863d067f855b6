"""Minutes as downloads: each format's media type, a safe file name, the response (the text
itself is ``subtitles.formats.render``'s)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi.responses import Response

from greffier.core.text import safe_name
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


def content_disposition(filename: str) -> str:
    """An attachment header with an ASCII name and the RFC 5987 UTF-8 form."""
    ascii_name = safe_name(filename, "minutes")
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
