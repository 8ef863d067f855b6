"""The live caption page and what it needs: a viewer token and the livekit-client bundle.

The page and its scripts are public (no secret in them); the viewer token is issued only to a
member of the room (``Authorization: Bearer <their LiveKit token>``) or an operator."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, PlainTextResponse, Response

from greffier.core.log import get_logger
from greffier.livekit.tokens import make_token
from greffier.service.auth import AUTH_RESPONSES, VIEWER_ATTRIBUTE, RoomMember
from greffier.service.schemas import ViewerToken
from greffier.service.state import ServiceState, get_state

logger = get_logger("service.live")

router = APIRouter(tags=["live captions"])

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
NO_CACHE = {"Cache-Control": "no-cache"}
VIEWER_NAME = "Caption viewer"
VIEWER_TOKEN_TTL_S = 10 * 60
"""Lifetime of a caption page's token: long enough to join (LiveKit checks it at connection and
then refreshes the connection's own token); a page reconnecting later fetches a new one."""

State = Annotated[ServiceState, Depends(get_state)]


@router.get("/live/{room}", response_class=FileResponse)
async def live_page(room: str) -> FileResponse:
    """A full-window page showing the room's captions as they are spoken."""
    return FileResponse(STATIC_DIR / "live.html", media_type="text/html", headers=NO_CACHE)


@router.get("/static/live.js", response_class=FileResponse)
async def live_script() -> FileResponse:
    return FileResponse(STATIC_DIR / "live.js", media_type="text/javascript", headers=NO_CACHE)


@router.get(
    "/static/livekit-client.js",
    response_class=FileResponse,
    responses={503: {"description": "the bundle has not been fetched"}},
)
async def livekit_client(state: State) -> Response:
    """The livekit-client browser bundle, fetched by ``scripts/fetch-web-deps``."""
    bundle = state.livekit_bundle()
    if bundle is None:
        # Public route: the folder goes to the log, not to the caller.
        logger.warning("the livekit-client bundle is missing from %s", state.livekit_client_dir)
        return PlainTextResponse(
            "the livekit-client browser bundle is missing: run scripts/fetch-web-deps "
            "(or set GREFFIER_SERVICE__WEB_ASSETS_DIR)",
            status_code=503,
        )
    return FileResponse(bundle, media_type="text/javascript")


@router.get("/api/token", response_model=ViewerToken, responses=AUTH_RESPONSES)
def viewer_token(
    caller: RoomMember,
    state: State,
    room: Annotated[str, Query(min_length=1, max_length=256)],
    response: Response,
) -> ViewerToken:
    """A caption viewer's token for ``room``, to a member of that room (or an operator):
    hidden, short-lived, receives data and text streams only (no media subscription, no
    publishing of media or data), and not itself a credential for this service."""
    identity = f"viewer-{uuid.uuid4().hex[:12]}"
    lk = state.settings.livekit
    token = make_token(
        lk,
        identity=identity,
        room=room,
        name=VIEWER_NAME,
        attributes={VIEWER_ATTRIBUTE: "1"},
        can_publish=False,
        can_subscribe=False,
        can_publish_data=False,
        can_update_own_metadata=False,
        hidden=True,
        ttl_s=VIEWER_TOKEN_TTL_S,
    )
    response.headers["Cache-Control"] = "no-store"
    url = state.service.public_livekit_url or lk.url
    return ViewerToken(token=token, url=url, room=room, identity=identity)
