"""Receiving a recording: a bounded number of uploads at once (checked before the body is
read), a size limit while it arrives, the file kept under a safe, short name; and the job
queue opened on the store before any upload is kept. Shared by ``/api/transcriptions`` and
``/v1/audio/transcriptions``, which word the errors their own way (:class:`UploadError`)."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from greffier.core.errors import GreffierError
from greffier.core.log import get_logger
from greffier.core.text import safe_name
from greffier.service.jobs import Job, JobQueue, new_job_id
from greffier.service.state import ServiceState
from greffier.store.jobs import JobStore

logger = get_logger("service.uploads")

FORM_OVERHEAD = 1 << 16
"""Bytes allowed on top of the file for the multipart envelope and the other fields."""
COPY_CHUNK = 1 << 20
MAX_FILENAME = 255
"""Characters of the client's file name that are kept (as data; the file on disk gets a
short safe name)."""
MAX_STORED_NAME = 96


def upload_form(fields: dict[str, Any]) -> dict[str, Any]:
    """A route's ``openapi_extra`` for a multipart upload it reads itself (after taking an
    upload slot): the required ``file``, a recording, and ``fields`` (OpenAPI properties)."""
    file = {
        "type": "string",
        "format": "binary",
        "description": "the recording (any format FFmpeg reads)",
    }
    schema = {"type": "object", "required": ["file"], "properties": {"file": file, **fields}}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


@dataclass
class UploadError(Exception):
    """An upload refused: the status, and what to tell the client."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def http(self) -> HTTPException:
        return HTTPException(self.status, detail=self.message, headers=self.headers or None)


def configured_jobs(state: ServiceState) -> JobQueue:
    """The state's job queue with the timeout and upload bound of its settings."""
    service = state.service
    state.jobs.configure(timeout_s=service.job_timeout_s, max_uploads=service.max_uploads_in_flight)
    return state.jobs


def open_jobs(state: ServiceState) -> JobQueue:
    """:func:`configured_jobs`, opened on the store (once: blocking, recovers the jobs a
    restart interrupted); UploadError 503 when the store cannot be opened."""
    queue = configured_jobs(state)
    if not queue.opened:
        try:
            queue.open(lambda: JobStore(state.settings.store_url), state.upload_dir)
        except GreffierError as e:  # StoreError, or the store's missing dependency
            logger.warning("job store unavailable: %s", e.message)
            raise UploadError(503, f"the job store is unavailable: {e}", code="store") from e
    return queue


@asynccontextmanager
async def upload_slot(queue: JobQueue) -> AsyncIterator[None]:
    """One of the ``max_uploads_in_flight`` places, held while an upload is received and
    kept; UploadError 503 (with ``Retry-After``) when none is free."""
    if not queue.uploads.try_take():
        raise UploadError(
            503,
            f"{queue.uploads.limit} uploads are already being received; retry in a moment "
            "(GREFFIER_SERVICE__MAX_UPLOADS_IN_FLIGHT sets the limit)",
            code="busy",
            headers={"Retry-After": "5"},
        )
    try:
        yield
    finally:
        queue.uploads.give_back()


def _too_large(limit: int) -> UploadError:
    return UploadError(
        413,
        f"the upload is larger than {limit / 1e6:g} MB "
        "(GREFFIER_SERVICE__MAX_UPLOAD_MB sets the limit)",
        param="file",
        code="too_large",
    )


async def read_form(request: Request, max_bytes: int) -> FormData:
    """The request's form (multipart or URL-encoded; one file at most), refused with 413 as
    soon as the body passes ``max_bytes`` plus the envelope, and 400 when malformed. The
    caller closes it."""
    limit = max_bytes + FORM_OVERHEAD
    try:
        declared = int(request.headers.get("content-length", "-1"))
    except ValueError:
        declared = -1
    if declared > limit:
        raise _too_large(max_bytes)
    received = 0
    receive = request.receive

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(max_bytes)
        return message

    bounded = Request(request.scope, limited)
    try:
        return await bounded.form(max_files=1, max_fields=64)
    except StarletteHTTPException as e:  # a malformed body (Starlette's parsers)
        raise UploadError(400, f"malformed form: {e.detail}", code="malformed") from e


def client_name(upload: UploadFile) -> str:
    """The client's file name, kept as data (no path, capped)."""
    name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:MAX_FILENAME] or "recording"


def stored_name(name: str) -> str:
    """A short, safe file name for the upload on disk, extension kept."""
    path = Path(name)
    suffix = safe_name(path.suffix, "")[:16] if path.suffix else ""
    stem = safe_name(path.stem, "recording")[: MAX_STORED_NAME - len(suffix) - 1]
    return f"{stem}.{suffix.lstrip('.')}" if suffix.strip(".") else stem


def _copy(upload: UploadFile, dest: Path, limit: int) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with dest.open("wb") as out:
            upload.file.seek(0)
            while chunk := upload.file.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                out.write(chunk)
    except BaseException:
        shutil.rmtree(dest.parent, ignore_errors=True)
        raise
    return size


async def keep_upload(upload: UploadFile, dest: Path, limit: int) -> int:
    """Copy the upload to ``dest`` (in the threadpool); 413, and nothing kept, past
    ``limit`` bytes."""
    return await run_in_threadpool(_copy, upload, dest, limit)


async def job_from_upload(
    state: ServiceState, upload: UploadFile, *, diarize: bool, language: str
) -> Job:
    """A new job for ``upload``: the client's name kept as data, the bytes stored (within the
    upload limit) under a safe name in the job's own folder."""
    job_id = new_job_id()
    name = client_name(upload)
    dest = state.upload_dir / job_id / stored_name(name)
    await keep_upload(upload, dest, state.max_upload_bytes)
    return Job(
        id=job_id,
        filename=name,
        path=dest,
        diarize=diarize,
        language=language,
        created_at=time.time(),
    )
