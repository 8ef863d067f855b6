"""The HTTP service (``greffier serve``): minutes of stored meetings, batch transcription of
recordings, and the live caption page.

Routes: ``/health``, ``/ready``; ``/api/meetings``, ``/api/meetings/{id}``,
``/api/meetings/{id}/minutes.{md,srt,vtt,json,rttm}``; ``POST /api/transcriptions``,
``/api/transcriptions/{id}``, ``/api/transcriptions/{id}/result.{fmt}``; ``/live/{room}``,
``/api/token``, ``/static/live.js``, ``/static/livekit-client.js``. Blocking work (the store,
uploads) runs in plain ``def`` routes, i.e. in the threadpool; transcriptions run on the job
queue's own thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from greffier.core.config import Settings
from greffier.core.log import get_logger
from greffier.service.jobs import Runner
from greffier.service.routers import health, live, meetings, transcriptions
from greffier.service.state import ServiceState

logger = get_logger("service")

UPLOAD_PATH = "/api/transcriptions"
FORM_OVERHEAD = 1 << 16
"""Bytes allowed on top of the file for the multipart envelope and the other fields."""


class UploadLimit:
    """413 for a ``POST`` to the upload route whose body exceeds the limit: at once when
    ``Content-Length`` says so, otherwise as soon as the bytes received pass it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return (f"the upload is larger than {(self.max_bytes - FORM_OVERHEAD) / 1e6:g} MB "
                "(GREFFIER_SERVICE__MAX_UPLOAD_MB sets the limit)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or (
            scope["path"].rstrip("/") != UPLOAD_PATH
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            declared = -1
        if declared > self.max_bytes:
            response = JSONResponse({"detail": self._message()}, status_code=413,
                                    headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body.
                    raise HTTPException(413, detail=self._message())
            return message

        await self.app(scope, limited, send)


def create_app(settings: Settings, *, runner: Runner | None = None) -> FastAPI:
    """The service's ASGI app. ``runner`` replaces the transcription of jobs (tests)."""
    state = ServiceState(settings, runner)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="greffier",
        summary="Meeting minutes, transcription of recordings and live captions",
        lifespan=lifespan,
    )
    app.state.greffier = state
    app.add_middleware(UploadLimit, max_bytes=state.max_upload_bytes + FORM_OVERHEAD)
    for module in (health, meetings, transcriptions, live):
        app.include_router(module.router)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Run the service with uvicorn until interrupted; returns the exit status."""
    import uvicorn

    app = create_app(settings)
    state: ServiceState = app.state.greffier
    if state.livekit_bundle() is None:
        logger.warning("the live caption page needs the livekit-client bundle: run "
                       "scripts/fetch-web-deps")
    config = uvicorn.Config(app, host=host, port=port, log_level=settings.log_level.lower(),
                            log_config=None)
    uvicorn.Server(config).run()
    return 0
