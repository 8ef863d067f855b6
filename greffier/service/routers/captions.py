"""Live captions of a room: start (explicit agent dispatch), stop, status.

Start and stop are an operator's (Meet's backend holds the operator key): stopping ends the
minutes for everyone. A member of the room may read the status. Stop sends a signed
``stop`` request on ``greffier.control`` with the server API (the captioner stores its last
finals, writes the minutes, ends the record and leaves); a captioner still there after
``STOP_WAIT_S`` is removed by the server, which the worker treats as the same stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from starlette.concurrency import run_in_threadpool

from greffier.core.config import LiveKitSettings
from greffier.core.errors import GreffierError
from greffier.core.log import get_logger
from greffier.service.auth import AUTH_RESPONSES, Operator, RoomMember
from greffier.service.schemas import CaptionStatus, ErrorOut
from greffier.service.state import ServiceState, get_state
from greffier.subtitles.control import CONTROL_TOPIC, signed_request
from greffier.subtitles.minutes import local_time
from greffier.subtitles.protocol import AGENT_ROLE, AGENT_ROLE_ATTRIBUTE

logger = get_logger("service.captions")

router = APIRouter(
    prefix="/api/rooms/{room}/captions",
    tags=["captions"],
    responses={
        **AUTH_RESPONSES,
        503: {"model": ErrorOut, "description": "LiveKit or the store is down"},
    },
)

State = Annotated[ServiceState, Depends(get_state)]
Room = Annotated[str, Path(min_length=1, max_length=256)]
STOP_WAIT_S = 30.0
"""How long a stop waits for the captioner to leave before the server removes it."""
POLL_S = 0.25


@asynccontextmanager
async def livekit_api(lk: LiveKitSettings) -> AsyncIterator[Any]:
    """A server API client; 503 when the LiveKit server cannot be reached."""
    import aiohttp
    from livekit import api

    client = api.LiveKitAPI(lk.http_url, lk.api_key, lk.api_secret.get_secret_value())
    try:
        yield client
    except api.TwirpError as e:
        logger.warning("LiveKit server API error: %s", e.code)
        raise HTTPException(503, detail=f"the LiveKit server refused the request ({e.code})") from e
    except (OSError, TimeoutError, aiohttp.ClientError) as e:
        logger.warning("LiveKit server unreachable: %s", type(e).__name__)
        raise HTTPException(
            503, detail="the LiveKit server cannot be reached (check GREFFIER_LIVEKIT__URL)"
        ) from e
    finally:
        await client.aclose()


async def captioners(client: Any, room: str) -> list[Any]:
    """greffier captioners in ``room`` (none when the room does not exist)."""
    from livekit import api

    try:
        resp = await client.room.list_participants(api.ListParticipantsRequest(room=room))
    except api.TwirpError as e:
        if e.code == api.TwirpErrorCode.NOT_FOUND:
            return []
        raise
    return [
        p for p in resp.participants if dict(p.attributes).get(AGENT_ROLE_ATTRIBUTE) == AGENT_ROLE
    ]


def _meeting_of(state: ServiceState, room: str) -> tuple[str | None, bool, list[str]]:
    """The room's latest meeting: id, live, speakers in order of first final (blocking)."""
    try:
        store = state.store()
        latest = store.list_meetings(room, limit=1)
        if not latest:
            return None, False, []
        meeting = latest[0]
        speakers = dict.fromkeys(s.speaker.display for s in store.segments_of(meeting.id))
    except GreffierError as e:
        logger.warning("transcript store unavailable: %s", e.message)
        raise HTTPException(503, detail="the transcript store is unavailable") from e
    return meeting.id, meeting.live, list(speakers)


async def status_of(state: ServiceState, client: Any, room: str) -> CaptionStatus:
    present = await captioners(client, room)
    meeting_id, live, speakers = await run_in_threadpool(_meeting_of, state, room)
    since: datetime | None = None
    if present:
        joined = min(p.joined_at for p in present)
        since = local_time(float(joined)) if joined else None
    return CaptionStatus(
        room=room,
        captioning=bool(present),
        since=since,
        meeting_id=meeting_id,
        live=live,
        speakers=speakers,
    )


@router.get("", response_model=CaptionStatus)
async def caption_status(room: Room, caller: RoomMember, state: State) -> CaptionStatus:
    """Whether the room is captioned, since when, and who has spoken in its meeting."""
    async with livekit_api(state.settings.livekit) as client:
        return await status_of(state, client, room)


@router.post(
    "",
    response_model=CaptionStatus,
    status_code=202,
    responses={200: {"model": CaptionStatus, "description": "a captioner is already in the room"}},
)
async def start_captions(
    room: Room, caller: Operator, state: State, response: Response
) -> CaptionStatus:
    """Send the captioner into the room (``CreateAgentDispatch``): 202 when dispatched, 200
    when a captioner is already there (nothing is done)."""
    from livekit import api

    async with livekit_api(state.settings.livekit) as client:
        if await captioners(client, room):
            response.status_code = 200
        else:
            await client.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=state.settings.agent.name, room=room)
            )
            logger.info("captioner dispatched")
        return await status_of(state, client, room)


async def _wait_gone(client: Any, room: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if not await captioners(client, room):
            return True
        await asyncio.sleep(POLL_S)
    return False


@router.delete("", response_model=CaptionStatus)
async def stop_captions(room: Room, caller: Operator, state: State) -> CaptionStatus:
    """Stop captioning: the captioner stores its last finals, writes the minutes, ends the
    meeting record and leaves. Returns once it has left (nothing to do: 200 all the same)."""
    from livekit import api

    lk = state.settings.livekit
    async with livekit_api(lk) as client:
        present = await captioners(client, room)
        if present:
            await client.room.send_data(
                api.SendDataRequest(
                    room=room,
                    data=signed_request("stop", room, lk.api_secret.get_secret_value()),
                    kind=api.DataPacket.Kind.RELIABLE,
                    topic=CONTROL_TOPIC,
                    destination_identities=[p.identity for p in present],
                )
            )
            if not await _wait_gone(client, room, time.monotonic() + STOP_WAIT_S):
                logger.warning("the captioner did not leave in %.0f s: removing it", STOP_WAIT_S)
                for p in await captioners(client, room):
                    await client.room.remove_participant(
                        api.RoomParticipantIdentity(room=room, identity=p.identity)
                    )
                await _wait_gone(client, room, time.monotonic() + STOP_WAIT_S)
        return await status_of(state, client, room)
