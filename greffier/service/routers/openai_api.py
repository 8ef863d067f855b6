"""OpenAI-compatible transcription: ``POST /v1/audio/transcriptions``, as OpenAI's audio API
and La Suite Meet's summary service call it (operator key as the Bearer token).

Synchronous, as OpenAI's: the upload becomes a job of the service's queue (same worker, same
duration limit and timeout as ``/api/transcriptions``), and the request waits for it without
blocking the event loop; nothing of it is stored. ``model`` names an OpenAI model (an alias of
``asr.model``) or a Whisper model greffier ships; ``diarized_json`` runs diarization and
labels speakers ``A``, ``B``... in order of first speech. ``prompt`` and ``temperature`` are
accepted and not used (greffier decodes with its own context and fallback). Errors have
OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``); an undecodable file is a
400, as Meet expects.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from greffier.core.log import get_logger
from greffier.core.types import TranscriptSegment
from greffier.models.registry import SHIPPED_MODELS
from greffier.service.auth import AUTH_RESPONSES, require_operator
from greffier.service.jobs import (
    INTERRUPTED,
    TIMED_OUT,
    TOO_LONG,
    UNDECODABLE,
    Job,
    QueueFullError,
)
from greffier.service.languages import language_name, whisper_language
from greffier.service.state import ServiceState, get_state
from greffier.service.uploads import (
    UploadError,
    configured_jobs,
    job_from_upload,
    read_form,
    upload_form,
    upload_slot,
)
from greffier.store.jobs import DONE
from greffier.subtitles.cues import DEFAULT, Cue, segment_cues
from greffier.subtitles.formats import to_srt, to_webvtt
from greffier.subtitles.minutes import Minutes

logger = get_logger("service.openai")

router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    dependencies=[Depends(require_operator)],
    responses=AUTH_RESPONSES,
)

State = Annotated[ServiceState, Depends(get_state)]

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
GRANULARITIES = ("word", "segment")
OPENAI_MODELS = frozenset(
    {
        "whisper-1",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-transcribe-diarize",
        "gpt-4o-mini-transcribe-2025-03-20",
        "gpt-4o-transcribe-latest",
    }
)
"""OpenAI model names, all served by the configured model (``asr.model``)."""

FORM_FIELDS: dict[str, Any] = {
    "model": {
        "type": "string",
        "default": "whisper-1",
        "maxLength": 128,
        "description": "whisper-1 (or another OpenAI name): the configured model; "
        "or a Whisper model greffier ships (" + ", ".join(SHIPPED_MODELS) + ")",
    },
    "language": {
        "type": "string",
        "maxLength": 32,
        "description": "a Whisper language (fr, en...); detected when absent",
    },
    "prompt": {"type": "string", "description": "accepted, not used"},
    "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
    "timestamp_granularities[]": {
        "type": "array",
        "items": {"type": "string", "enum": list(GRANULARITIES)},
    },
    "temperature": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "description": "accepted, not used",
    },
}
"""The form's fields besides ``file``, as the OpenAPI schema shows them."""


class _Word(BaseModel):
    word: str
    start: float
    end: float


class _Segment(BaseModel):
    id: int
    seek: int = 0
    start: float
    end: float
    text: str
    tokens: list[int] = []
    temperature: float = 0.0
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float = 0.0


class _DiarizedSegment(BaseModel):
    type: str = "transcript.text.segment"
    id: str
    start: float
    end: float
    text: str
    speaker: str


class _Usage(BaseModel):
    type: str = "duration"
    seconds: float


class TranscriptionOut(BaseModel):
    """``json``: the text (and ``verbose_json``/``diarized_json``'s fields with those)."""

    text: str
    task: str | None = None
    language: str | None = None
    duration: float | None = None
    segments: list[_Segment] | list[_DiarizedSegment] | None = None
    words: list[_Word] | None = None
    usage: _Usage | None = None


class _ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: _ErrorBody


def _error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    kind = {401: "authentication_error", 429: "rate_limit_exceeded"}.get(
        status, "invalid_request_error" if status < 500 else "server_error"
    )
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class _Invalid(Exception):
    def __init__(self, message: str, param: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def resolve_model(name: str, default: str) -> str | None:
    """The Whisper model a request's ``model`` names, or None when greffier has none of that
    name (an OpenAI name is the configured model; hub ids and paths are never taken from a
    client)."""
    name = name.strip()
    if not name or name in OPENAI_MODELS or name == default:
        return default
    return name if name in SHIPPED_MODELS else None


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if isinstance(value, UploadFile):
        raise _Invalid(f"{name} must be a text field", name)
    return value


def _parse(form: FormData, default_model: str) -> dict[str, Any]:
    """The request's options, or _Invalid saying which field is wrong."""
    fmt = (_text_field(form, "response_format") or "json").strip()
    if fmt not in RESPONSE_FORMATS:
        raise _Invalid(
            f"response_format must be one of {', '.join(RESPONSE_FORMATS)}", "response_format"
        )
    granularities: list[str] = []
    for key in ("timestamp_granularities[]", "timestamp_granularities"):
        for value in form.getlist(key):
            if not isinstance(value, str) or value.strip() not in GRANULARITIES:
                raise _Invalid(
                    "timestamp_granularities[] takes word and/or segment",
                    "timestamp_granularities[]",
                )
            granularities.append(value.strip())
    requested = _text_field(form, "model") or "whisper-1"
    model = resolve_model(requested, default_model)
    if model is None:
        raise _Invalid(
            f"unknown model; use whisper-1 or one of: {', '.join(SHIPPED_MODELS)}",
            "model",
            "model_not_found",
        )
    given = _text_field(form, "language")
    language = whisper_language(given)
    if language is None:
        raise _Invalid(
            "language is not one Whisper knows (give an ISO-639-1 code such as fr or en)",
            "language",
            "unsupported_language",
        )
    if (_text_field(form, "stream") or "false").strip().lower() in ("true", "1"):
        raise _Invalid(
            "streaming is not supported; ask without stream", "stream", "unsupported_value"
        )
    temperature = _text_field(form, "temperature")
    if temperature is not None:
        try:
            t = float(temperature)
        except ValueError:
            t = math.nan
        if not 0.0 <= t <= 1.0:
            raise _Invalid("temperature must be a number between 0 and 1", "temperature")
    return {
        "format": fmt,
        "granularities": set(granularities),
        "model": model,
        "language": language,
    }


@router.post(
    "/audio/transcriptions",
    response_model=TranscriptionOut,
    responses={
        200: {
            "content": {"text/plain": {}, "application/x-subrip": {}, "text/vtt": {}},
            "description": "the transcript, in ``response_format``",
        },
        400: {
            "model": OpenAIError,
            "description": "an invalid field, or a file that is no audio "
            "greffier can decode (or longer than the duration limit)",
        },
        413: {"model": OpenAIError, "description": "the upload is too large"},
        429: {"model": OpenAIError, "description": "the queue is full; retry later"},
        500: {"model": OpenAIError, "description": "the transcription failed"},
        503: {
            "model": OpenAIError,
            "description": "too many uploads are being received, or the service is stopping",
        },
        504: {"model": OpenAIError, "description": "the transcription ran past its timeout"},
    },
    openapi_extra=upload_form(FORM_FIELDS),
)
async def create_transcription(request: Request, state: State) -> Response:
    """Transcribe a recording and answer with its transcript (OpenAI's audio API)."""
    queue = configured_jobs(state)
    try:
        async with upload_slot(queue):
            form = await read_form(request, state.max_upload_bytes)
            try:
                job = await _receive(form, state)
            finally:
                await form.close()
    except UploadError as e:
        return _error(e.status, e.message, param=e.param, code=e.code, headers=e.headers)
    except _Invalid as e:
        return _error(400, e.message, param=e.param, code=e.code)
    options = job[1]
    try:
        done = await _run(state, job[0])
    except QueueFullError as e:
        return _error(429, str(e), code="queue_full", headers={"Retry-After": "30"})
    return _answer(done, options)


async def _receive(form: FormData, state: ServiceState) -> tuple[Job, dict[str, Any]]:
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise _Invalid(
            "file is required: a multipart file field named file",
            "file",
            "missing_required_parameter",
        )
    options = _parse(form, state.settings.asr.model)
    job = await job_from_upload(
        state, file, diarize=options["format"] == "diarized_json", language=options["language"]
    )
    job.model, job.stored = options["model"], False
    return job, options


async def _run(state: ServiceState, job: Job) -> Job:
    """Queue the job and wait for it (the queue's thread runs it); a request that goes away
    cancels it."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[Job] = loop.create_future()

    def settle(result: Job) -> None:
        if not finished.done():
            finished.set_result(result)

    def on_done(result: Job) -> None:
        try:
            loop.call_soon_threadsafe(settle, result)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    try:
        await run_in_threadpool(state.jobs.submit, job, on_done)
    except QueueFullError:
        await run_in_threadpool(_discard, job)
        raise
    logger.info("job %s queued (OpenAI API, %s)", job.id, "diarized" if job.diarize else "text")
    try:
        return await finished
    except asyncio.CancelledError:
        state.jobs.cancel(job.id)
        raise


def _discard(job: Job) -> None:
    import shutil

    shutil.rmtree(job.path.parent, ignore_errors=True)


def _answer(job: Job, options: dict[str, Any]) -> Response:
    if job.status != DONE or job.minutes is None:
        error = job.error or "the transcription failed"
        if job.error_code in (UNDECODABLE, TOO_LONG):
            code = "invalid_file" if job.error_code == UNDECODABLE else "audio_too_long"
            return _error(400, error, param="file", code=code)
        if job.error_code == TIMED_OUT:
            return _error(504, error, code="timeout")
        if job.error_code == INTERRUPTED:
            return _error(503, error, code="interrupted", headers={"Retry-After": "30"})
        return _error(500, error, code="internal_error")
    minutes = job.minutes
    duration = round(job.duration_s if job.duration_s is not None else minutes.duration_s, 3)
    fmt = options["format"]
    text = " ".join(s.text.strip() for s in minutes.segments if s.text.strip())
    if fmt == "text":
        return PlainTextResponse(text + "\n")
    if fmt == "srt":
        return Response(
            to_srt(_cues(minutes), speaker_names=False),
            media_type="application/x-subrip; charset=utf-8",
        )
    if fmt == "vtt":
        return Response(
            to_webvtt(_cues(minutes), speaker_names=False), media_type="text/vtt; charset=utf-8"
        )
    usage = _Usage(seconds=math.ceil(duration))
    if fmt == "json":
        out = TranscriptionOut(text=text, usage=usage)
    elif fmt == "verbose_json":
        language = minutes.segments[0].language if minutes.segments else options["language"]
        out = TranscriptionOut(
            task="transcribe",
            language=language_name(language) if language != "auto" else "",
            duration=duration,
            text=text,
            segments=_segments(minutes.segments),
            words=_words(minutes.segments) if "word" in options["granularities"] else None,
            usage=usage,
        )
    else:
        out = TranscriptionOut(
            task="transcribe",
            duration=duration,
            text=text,
            segments=_diarized(minutes.segments),
            usage=usage,
        )
    return JSONResponse(out.model_dump(exclude_none=True))


def _cues(minutes: Minutes) -> list[Cue]:
    return segment_cues(minutes.segments, DEFAULT)


def _segments(segments: tuple[TranscriptSegment, ...]) -> list[_Segment]:
    from greffier.asr.whisper import compression_ratio

    out = []
    for i, s in enumerate(segments):
        probs = [w.probability for w in s.words if w.probability > 0]
        logprob = sum(math.log(p) for p in probs) / len(probs) if probs else 0.0
        out.append(
            _Segment(
                id=i,
                start=round(s.start, 3),
                end=round(s.end, 3),
                text=" " + s.text.strip(),
                avg_logprob=round(logprob, 4),
                compression_ratio=round(compression_ratio(s.text), 4),
            )
        )
    return out


def _words(segments: tuple[TranscriptSegment, ...]) -> list[_Word]:
    return [
        _Word(word=w.text.strip(), start=round(w.start, 3), end=round(w.end, 3))
        for s in segments
        for w in s.words
        if w.text.strip()
    ]


def _diarized(segments: tuple[TranscriptSegment, ...]) -> list[_DiarizedSegment]:
    """Segments labelled ``A``, ``B``... by speaker, in order of first speech."""
    letters: dict[str, str] = {}
    out = []
    for i, s in enumerate(segments):
        key = s.speaker.identity
        if key not in letters:
            n = len(letters)
            letters[key] = chr(ord("A") + n) if n < 26 else f"S{n + 1}"
        out.append(
            _DiarizedSegment(
                id=f"seg_{i}",
                start=round(s.start, 3),
                end=round(s.end, 3),
                text=s.text.strip(),
                speaker=letters[key],
            )
        )
    return out
