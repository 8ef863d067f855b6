"""``/metrics``: the service's Prometheus metrics, for operators only (an operator key)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from greffier.core import metrics
from greffier.service.auth import Operator

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
)
def prometheus_metrics(caller: Operator) -> Response:
    """The process's metrics in Prometheus' text format (families in
    ``greffier.core.metrics``): HTTP requests by route template and status, store errors."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


class RequestMetrics:
    """Counts each HTTP request by method, route template (never the raw path: it holds room
    names and ids) and status, and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics.http_request(scope["method"], route, status, time.perf_counter() - started)
