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

import importlib.util
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from greffier.core.config import DEV_API_SECRET, Settings
from greffier.core.errors import ConfigurationError
from greffier.core.log import get_logger
from greffier.service.jobs import Runner
from greffier.service.routers import (
    captions,
    health,
    live,
    meetings,
    metrics,
    openai_api,
    transcriptions,
)
from greffier.service.state import ServiceState

logger = get_logger("service")

UPLOAD_PATH = "/api/transcriptions"
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
"""Swagger UI's files served under ``/docs/assets/``."""
FORM_OVERHEAD = 1 << 16
"""Bytes allowed on top of the file for the multipart envelope and the other fields."""


class UploadLimit:
    """413 for a ``POST`` to the upload route whose body exceeds the limit: at once when
    ``Content-Length`` says so, otherwise as soon as the bytes received pass it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return (
            f"the upload is larger than {(self.max_bytes - FORM_OVERHEAD) / 1e6:g} MB "
            "(GREFFIER_SERVICE__MAX_UPLOAD_MB sets the limit)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or (scope["path"].rstrip("/") != UPLOAD_PATH)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            declared = -1
        if declared > self.max_bytes:
            response = JSONResponse(
                {"detail": self._message()}, status_code=413, headers={"Connection": "close"}
            )
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


def swagger_assets() -> Path | None:
    """Swagger UI's files as the ``fastapi-offline`` package ships them, or None."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if all((folder / f).is_file() for f in DOCS_ASSETS) else None


def add_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) from local files only, no CDN; off when they are not installed.
    ``/docs`` and ``/openapi.json`` describe the API and hold no data: they are public."""
    assets = swagger_assets()
    if assets is None:
        logger.info("/docs is off: Swagger UI's files are not installed (fastapi-offline)")
        return

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="greffier API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        if name not in DOCS_ASSETS:
            raise HTTPException(404, detail="no such file")
        return FileResponse(assets / name, media_type=DOCS_ASSETS[name])


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
        docs_url=None,
        redoc_url=None,
    )
    app.state.greffier = state
    add_docs(app)
    app.add_middleware(UploadLimit, max_bytes=state.max_upload_bytes + FORM_OVERHEAD)
    app.add_middleware(metrics.RequestMetrics)
    for module in (health, meetings, captions, transcriptions, openai_api, live, metrics):
        app.include_router(module.router)
    return app


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; any other name or address is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse to listen beyond loopback without operator keys, or with the development
    LiveKit secret (anyone could sign a member token with it)."""
    if is_loopback(host):
        return
    if not settings.service.api_keys:
        raise ConfigurationError(
            f"refusing to listen on {host}: no operator key is configured",
            hint="set GREFFIER_SERVICE__API_KEYS='[\"<a long random key>\"]', or listen on "
            "127.0.0.1",
        )
    if settings.livekit.api_secret.get_secret_value() == DEV_API_SECRET:
        raise ConfigurationError(
            f"refusing to listen on {host}: the LiveKit API secret is the public development "
            "one, with which anyone can sign a room member's token",
            hint="set LIVEKIT_API_SECRET (or GREFFIER_LIVEKIT__API_SECRET) to the "
            "deployment's secret",
        )


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Run the service with uvicorn until interrupted; returns the exit status. Raises
    ConfigurationError when ``host`` is beyond loopback and access is not configured."""
    import uvicorn

    check_exposure(settings, host)
    app = create_app(settings)
    state: ServiceState = app.state.greffier
    if state.livekit_bundle() is None:
        logger.warning(
            "the live caption page needs the livekit-client bundle: run scripts/fetch-web-deps"
        )
    config = uvicorn.Config(
        app, host=host, port=port, log_level=settings.log_level.lower(), log_config=None
    )
    uvicorn.Server(config).run()
    return 0
