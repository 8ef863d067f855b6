"""The live caption page and what it needs: a viewer token and the livekit-client bundle."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, PlainTextResponse, Response

from greffier.service.schemas import ViewerToken
from greffier.service.state import ServiceState, get_state

router = APIRouter(tags=["live captions"])

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
NO_CACHE = {"Cache-Control": "no-cache"}
VIEWER_NAME = "Caption viewer"
VIEWER_TOKEN_TTL_S = 12 * 3600
"""Lifetime of a caption page's token (a page reconnecting later fetches a new one)."""

State = Annotated[ServiceState, Depends(get_state)]


@router.get("/live/{room}", response_class=FileResponse)
async def live_page(room: str) -> FileResponse:
    """A full-window page showing the room's captions as they are spoken."""
    return FileResponse(STATIC_DIR / "live.html", media_type="text/html", headers=NO_CACHE)


@router.get("/static/live.js", response_class=FileResponse)
async def live_script() -> FileResponse:
    return FileResponse(STATIC_DIR / "live.js", media_type="text/javascript", headers=NO_CACHE)


@router.get("/static/livekit-client.js", response_class=FileResponse,
            responses={503: {"description": "the bundle has not been fetched"}})
async def livekit_client(state: State) -> Response:
    """The livekit-client browser bundle, fetched by ``scripts/fetch-web-deps``."""
    bundle = state.livekit_bundle()
    if bundle is None:
        return PlainTextResponse(
            f"the livekit-client browser bundle is missing from {state.livekit_client_dir}: "
            "run scripts/fetch-web-deps (or set GREFFIER_SERVICE__WEB_ASSETS_DIR)",
            status_code=503,
        )
    return FileResponse(bundle, media_type="text/javascript")


@router.get("/api/token", response_model=ViewerToken)
def viewer_token(
    state: State, room: Annotated[str, Query(min_length=1, max_length=256)]
) -> ViewerToken:
    """A hidden participant token for ``room`` that can subscribe but not publish media."""
    from greffier.rtc.client import make_token

    identity = f"viewer-{uuid.uuid4().hex[:12]}"
    token = make_token(
        state.settings.livekit, identity=identity, room=room, name=VIEWER_NAME,
        can_publish=False, can_publish_data=False, hidden=True, ttl_s=VIEWER_TOKEN_TTL_S,
    )
    url = state.service.public_livekit_url or state.settings.livekit.url
    return ViewerToken(token=token, url=url, room=room, identity=identity)
