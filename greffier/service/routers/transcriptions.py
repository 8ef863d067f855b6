"""Batch transcription of uploaded recordings: a job per upload, polled until done (operator
key). Jobs and their minutes live in the store and survive a restart (``service.jobs``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from greffier.core.log import get_logger
from greffier.core.text import safe_name
from greffier.service.auth import AUTH_RESPONSES, require_operator
from greffier.service.export import MINUTES_RESPONSES, check_format, download
from greffier.service.jobs import Job, QueueFullError
from greffier.service.languages import whisper_language
from greffier.service.schemas import ErrorOut, JobOut
from greffier.service.state import CaptionRules, ServiceState, get_state
from greffier.service.uploads import (
    UploadError,
    job_from_upload,
    open_jobs,
    read_form,
    upload_form,
    upload_slot,
)
from greffier.store.jobs import DONE, FAILED
from greffier.subtitles.formats import FORMATS
from greffier.subtitles.minutes import local_time

logger = get_logger("service.transcriptions")


@asynccontextmanager
async def _open_jobs_at_start(app: FastAPI) -> AsyncIterator[None]:
    """Open the job queue on the store when the service starts, so that jobs a restart
    interrupted run again without waiting for a request."""
    try:
        await run_in_threadpool(open_jobs, app.state.greffier)
    except UploadError:
        pass  # logged; the first request tries again and answers 503
    yield


router = APIRouter(
    prefix="/api/transcriptions",
    tags=["transcriptions"],
    dependencies=[Depends(require_operator)],
    responses=AUTH_RESPONSES,
    lifespan=_open_jobs_at_start,
)

State = Annotated[ServiceState, Depends(get_state)]

REFUSED_TYPE_PREFIXES = ("text/", "image/", "font/", "model/", "message/", "multipart/")
REFUSED_TYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/xml",
        "application/xhtml+xml",
        "application/pdf",
        "application/javascript",
        "application/ecmascript",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/msword",
        "application/rtf",
        "application/x-www-form-urlencoded",
        "application/x-sh",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
    }
)
"""Content types that are certainly no recording (415 at once). Anything else, a missing or
``application/octet-stream`` type included, goes to FFmpeg, whose verdict is final."""

FORM_FIELDS: dict[str, Any] = {
    "diarize": {"type": "boolean", "default": False, "description": "tell speakers apart"},
    "language": {
        "type": "string",
        "default": "auto",
        "maxLength": 32,
        "description": "auto, or a Whisper language (fr, en, fr-CA, french...)",
    },
}
"""The form's fields besides ``file``, as the OpenAPI schema shows them."""


def _refused(content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind.startswith("application/vnd.openxmlformats"):
        return True
    return kind.startswith(REFUSED_TYPE_PREFIXES) or kind in REFUSED_TYPES


def _invalid(
    field: str, message: str, value: object = None, kind: str = "value_error"
) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": kind,
                "loc": ("body", field),
                "msg": message,
                "input": value if isinstance(value, str | None) else str(value),
            }
        ]
    )


def _bool(field: str, value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in ("", "false", "0", "no", "off"):
        return False
    if text in ("true", "1", "yes", "on"):
        return True
    raise _invalid(field, "Input should be a valid boolean", value, "bool_parsing")


def _out(job: Job, position: int | None) -> JobOut:
    def when(t: float | None) -> datetime | None:
        return local_time(t) if t is not None else None

    return JobOut(
        id=job.id,
        status=job.status,
        filename=job.filename,
        diarize=job.diarize,
        language=job.language,
        created_at=local_time(job.created_at),
        started_at=when(job.started_at),
        finished_at=when(job.finished_at),
        queue_position=position,
        progress_s=job.progress_s,
        duration_s=job.duration_s,
        error=job.error,
        result={fmt: f"/api/transcriptions/{job.id}/result.{fmt}" for fmt in FORMATS}
        if job.status == DONE
        else {},
    )


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses={
        400: {"model": ErrorOut, "description": "a malformed form"},
        413: {"model": ErrorOut, "description": "the upload is too large"},
        415: {"model": ErrorOut, "description": "the upload is certainly no audio or video"},
        422: {"description": "a field is missing or invalid (an unknown language)"},
        429: {"model": ErrorOut, "description": "the queue is full; retry later"},
        503: {
            "model": ErrorOut,
            "description": "too many uploads are being received, or the store is down",
        },
    },
    openapi_extra=upload_form(FORM_FIELDS),
)
async def create_transcription(request: Request, state: State, response: Response) -> JobOut:
    """Queue the transcription of a recording (multipart: ``file``, ``diarize``,
    ``language``); poll ``GET /api/transcriptions/{id}``. At most
    ``max_uploads_in_flight`` uploads are received at once (503 before the body is read)."""
    try:
        queue = await run_in_threadpool(open_jobs, state)
        async with upload_slot(queue):
            form = await read_form(request, state.max_upload_bytes)
            try:
                return await _queue_upload(form, state, response)
            finally:
                await form.close()
    except UploadError as e:
        raise e.http() from None


async def _queue_upload(form: Any, state: ServiceState, response: Response) -> JobOut:
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise _invalid("file", "Field required", None, "missing")
    diarize = _bool("diarize", form.get("diarize"))
    given = form.get("language")
    language = whisper_language(given if isinstance(given, str) else None)
    if language is None:
        raise _invalid(
            "language", "not a language Whisper knows; give auto or a code such as fr or en", given
        )
    if _refused(file.content_type):
        raise HTTPException(
            415,
            detail=f"{file.content_type} is not audio or video; upload a "
            "recording (any format FFmpeg reads)",
        )
    job = await job_from_upload(state, file, diarize=diarize, language=language)
    try:
        await run_in_threadpool(state.jobs.submit, job)
    except QueueFullError as e:
        await run_in_threadpool(_discard, job.path)
        raise HTTPException(429, detail=str(e), headers={"Retry-After": "30"}) from e
    logger.info("job %s queued", job.id)
    response.headers["Location"] = f"/api/transcriptions/{job.id}"
    found = await run_in_threadpool(state.jobs.get, job.id)
    return _out(*(found or (job, None)))


def _discard(dest: Path) -> None:
    import shutil

    shutil.rmtree(dest.parent, ignore_errors=True)


def _job(state: ServiceState, job_id: str) -> tuple[Job, int | None]:
    try:
        open_jobs(state)
    except UploadError as e:
        raise e.http() from None
    found = state.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, detail=f"no transcription job {job_id!r}")
    return found


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
def transcription_status(job_id: str, state: State) -> JobOut:
    """Where a job stands: queued, running, done (with result links) or failed (with why)."""
    return _out(*_job(state, job_id))


@router.get(
    "/{job_id}/result.{fmt}",
    responses={
        **MINUTES_RESPONSES,
        409: {"model": ErrorOut, "description": "the job failed or is not done yet"},
        503: {"model": ErrorOut},
    },
)
def transcription_result(
    job_id: str,
    fmt: str,
    state: State,
    rules: CaptionRules,
) -> Response:
    """The minutes of a finished job as md, srt, vtt, json or rttm."""
    check_format(fmt)
    job = _job(state, job_id)[0]
    if job.status == FAILED:
        raise HTTPException(409, detail=f"the job failed: {job.error}")
    if job.status != DONE or job.minutes is None:
        raise HTTPException(
            409,
            detail=f"the job is {job.status}; poll /api/transcriptions/{job_id} until it is done",
        )
    stem = safe_name(Path(job.filename).stem, "recording")[:96]
    response = download(job.minutes, fmt, rules, stem)
    response.headers["Cache-Control"] = "no-store"
    return response
