"""Meetings of the transcript store and their minutes, assembled on request.

An operator sees every room; a member (LiveKit token for a room) sees only that room's
meetings: another room's meeting is a 403. Responses carry ``Cache-Control: no-store``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from greffier.service.auth import AUTH_RESPONSES, Authenticated, Caller, check_room
from greffier.service.export import (
    MINUTES_RESPONSES,
    check_format,
    download,
)
from greffier.service.schemas import (
    ErrorOut,
    MeetingDetail,
    MeetingList,
    MeetingSummary,
    SegmentOut,
)
from greffier.service.state import CaptionRules, ServiceState, get_state, get_store
from greffier.store.sql import MeetingRecord, TranscriptStore
from greffier.subtitles.formats import FORMATS, segment_document
from greffier.subtitles.minutes import Minutes, assemble_minutes, local_time, minutes_stem

router = APIRouter(prefix="/api/meetings", tags=["meetings"], responses=AUTH_RESPONSES)

NO_STORE = "no-store"

Store = Annotated[TranscriptStore, Depends(get_store)]
State = Annotated[ServiceState, Depends(get_state)]


def _summary(m: MeetingRecord, state: ServiceState) -> MeetingSummary:
    return MeetingSummary(
        id=m.id,
        room=m.room,
        title=m.title or m.room,
        started_at=local_time(m.started_at),
        ended_at=local_time(m.ended_at) if m.ended_at is not None else None,
        live=m.live,
    )


def _load(store: TranscriptStore, meeting_id: str, caller: Caller) -> tuple[MeetingRecord, Minutes]:
    meeting = store.meeting(meeting_id)
    if meeting is None:
        raise HTTPException(404, detail="no such meeting")
    check_room(caller, meeting.room)
    minutes = assemble_minutes(
        store.segments_of(meeting_id),
        title=meeting.title or meeting.room,
        started_at=local_time(meeting.started_at),
    )
    return meeting, minutes


@router.get("", response_model=MeetingList)
def list_meetings(
    caller: Authenticated,
    store: Store,
    state: State,
    response: Response,
    room: Annotated[str | None, Query(max_length=256, description="only this room")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MeetingList:
    """Meetings, most recent first: all rooms' for an operator, the member's room's otherwise
    (asking a member for another ``room`` is a 403)."""
    if room is not None:
        check_room(caller, room)
    elif not caller.operator:
        room = caller.room
    response.headers["Cache-Control"] = NO_STORE
    return MeetingList(meetings=[_summary(m, state) for m in store.list_meetings(room, limit)])


@router.get("/{meeting_id}", response_model=MeetingDetail, responses={404: {"model": ErrorOut}})
def meeting_detail(
    meeting_id: str, caller: Authenticated, store: Store, state: State, response: Response
) -> MeetingDetail:
    """A meeting's metadata and final segments."""
    meeting, minutes = _load(store, meeting_id, caller)
    response.headers["Cache-Control"] = NO_STORE
    return MeetingDetail(
        **_summary(meeting, state).model_dump(),
        duration_s=minutes.duration_s,
        participants=list(minutes.participants),
        segments=[
            SegmentOut.model_validate(segment_document(s, words=False)) for s in minutes.segments
        ],
        minutes={fmt: f"/api/meetings/{meeting.id}/minutes.{fmt}" for fmt in FORMATS},
    )


@router.get(
    "/{meeting_id}/minutes.{fmt}",
    responses=MINUTES_RESPONSES,
)
def meeting_minutes(
    meeting_id: str,
    fmt: str,
    caller: Authenticated,
    store: Store,
    state: State,
    rules: CaptionRules,
) -> Response:
    """The minutes as md, srt, vtt, json or rttm, named ``<room>-<YYYYMMDD-HHMM>.<fmt>``."""
    check_format(fmt)
    meeting, minutes = _load(store, meeting_id, caller)
    stem = minutes_stem(meeting.room, minutes.started_at)
    out = download(minutes, fmt, rules, stem)
    out.headers["Cache-Control"] = NO_STORE
    return out
