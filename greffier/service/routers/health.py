"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from greffier.core.errors import GreffierError
from greffier.core.log import get_logger
from greffier.service.schemas import Health, Readiness
from greffier.service.state import get_state

logger = get_logger("service.health")

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process answers."""
    return Health()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(request: Request) -> JSONResponse:
    """The transcript store can be read (503 otherwise, with the reason)."""
    try:
        get_state(request).store().list_meetings(limit=1)
    except GreffierError as e:
        body = Readiness(status="unavailable", store=str(e))
        return JSONResponse(body.model_dump(), status_code=503)
    except Exception as e:  # noqa: BLE001 - a database driver error of any kind
        logger.warning("readiness check failed: %s", type(e).__name__)
        body = Readiness(status="unavailable", store=f"{type(e).__name__}: the store query "
                         "failed (check GREFFIER_STORE__URL and that the database runs)")
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(Readiness(status="ready", store="ok").model_dump())
