"""Batch transcription of uploaded recordings: a job per upload, polled until done."""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Response, UploadFile

from greffier.core.log import get_logger
from greffier.service.export import (
    check_format,
    download,
    local_time,
    safe_name,
)
from greffier.service.jobs import DONE, FAILED, Job, QueueFullError, new_job_id
from greffier.service.routers.meetings import rules_of
from greffier.service.schemas import JobOut
from greffier.service.state import ServiceState, get_state
from greffier.subtitles.formats import FORMATS

logger = get_logger("service.transcriptions")

router = APIRouter(prefix="/api/transcriptions", tags=["transcriptions"])

State = Annotated[ServiceState, Depends(get_state)]

REFUSED_TYPE_PREFIXES = ("text/", "image/", "font/", "model/", "message/", "multipart/")
REFUSED_TYPES = frozenset({
    "application/json", "application/ld+json", "application/xml", "application/xhtml+xml",
    "application/pdf", "application/javascript", "application/ecmascript", "application/zip",
    "application/gzip", "application/x-gzip", "application/x-tar", "application/x-7z-compressed",
    "application/x-rar-compressed", "application/vnd.rar", "application/msword",
    "application/rtf", "application/x-www-form-urlencoded", "application/x-sh",
    "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
})
"""Content types that are certainly no recording (415 at once). Anything else, a missing or
``application/octet-stream`` type included, goes to FFmpeg, whose verdict is final."""

COPY_CHUNK = 1 << 20
LANGUAGE_PATTERN = r"^(auto|[a-z]{2,3}(-[a-zA-Z]{2,4})?)$"


def _refused(content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind.startswith("application/vnd.openxmlformats"):
        return True
    return kind.startswith(REFUSED_TYPE_PREFIXES) or kind in REFUSED_TYPES


def _out(job: Job, position: int | None, state: ServiceState) -> JobOut:
    def when(t: float | None) -> datetime | None:
        return local_time(t) if t is not None else None

    return JobOut(
        id=job.id, status=job.status,  # type: ignore[arg-type]
        filename=job.filename, diarize=job.diarize, language=job.language,
        created_at=local_time(job.created_at), started_at=when(job.started_at),
        finished_at=when(job.finished_at), queue_position=position,
        progress_s=job.progress_s, duration_s=job.duration_s, error=job.error,
        result={fmt: f"/api/transcriptions/{job.id}/result.{fmt}" for fmt in FORMATS}
        if job.status == DONE else {},
    )


def _save(upload: UploadFile, dest: Path, limit: int) -> int:
    """Copy the upload to ``dest``; 413 (and nothing kept) when it exceeds ``limit`` bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with dest.open("wb") as out:
            upload.file.seek(0)
            while chunk := upload.file.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(
                        413, detail=f"the upload is larger than {limit / 1e6:g} MB "
                        "(GREFFIER_SERVICE__MAX_UPLOAD_MB sets the limit)",
                    )
                out.write(chunk)
    except BaseException:
        shutil.rmtree(dest.parent, ignore_errors=True)
        raise
    return size


@router.post("", status_code=202, response_model=JobOut, responses={
    413: {"description": "the upload is too large"},
    415: {"description": "the upload is certainly no audio or video"},
    429: {"description": "the queue is full; retry later"},
})
def create_transcription(
    state: State,
    response: Response,
    file: Annotated[UploadFile, File(description="a recording FFmpeg can read")],
    diarize: Annotated[bool, Form(description="tell speakers apart")] = False,
    language: Annotated[str, Form(pattern=LANGUAGE_PATTERN,
                                  description="auto, or a code such as fr or en")] = "auto",
) -> JobOut:
    """Queue the transcription of a recording; poll ``GET /api/transcriptions/{id}``."""
    if _refused(file.content_type):
        raise HTTPException(415, detail=f"{file.content_type} is not audio or video; upload a "
                            "recording (any format FFmpeg reads)")
    job_id = new_job_id()
    name = file.filename or "recording"
    dest = state.upload_dir / job_id / safe_name(Path(name).name, "recording")
    _save(file, dest, state.max_upload_bytes)
    job = Job(id=job_id, filename=name, path=dest, diarize=diarize, language=language,
              created_at=time.time())
    try:
        state.jobs.submit(job)
    except QueueFullError as e:
        shutil.rmtree(dest.parent, ignore_errors=True)
        raise HTTPException(429, detail=str(e), headers={"Retry-After": "30"}) from e
    logger.info("job %s queued", job_id)
    response.headers["Location"] = f"/api/transcriptions/{job_id}"
    found = state.jobs.get(job_id)
    return _out(*(found or (job, None)), state)


@router.get("/{job_id}", response_model=JobOut, responses={404: {}})
def transcription_status(job_id: str, state: State) -> JobOut:
    """Where a job stands: queued, running, done (with result links) or failed (with why)."""
    found = state.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, detail=f"no transcription job {job_id!r}")
    return _out(*found, state)


@router.get("/{job_id}/result.{fmt}", responses={404: {}, 409: {}})
def transcription_result(
    job_id: str,
    fmt: str,
    state: State,
    profile: Annotated[str, Query(description="caption rules: default or fr-tv")] = "default",
) -> Response:
    """The minutes of a finished job as md, srt, vtt, json or rttm."""
    check_format(fmt)
    rules = rules_of(profile)
    found = state.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, detail=f"no transcription job {job_id!r}")
    job = found[0]
    if job.status == FAILED:
        raise HTTPException(409, detail=f"the job failed: {job.error}")
    if job.status != DONE or job.minutes is None:
        raise HTTPException(409, detail=f"the job is {job.status}; poll "
                            f"/api/transcriptions/{job_id} until it is done")
    stem = safe_name(Path(job.filename).stem, "recording")
    return download(job.minutes, fmt, rules, stem)
