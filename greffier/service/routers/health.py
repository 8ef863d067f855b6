"""Liveness and readiness: open to anyone (load balancers, orchestrators), and they reveal
nothing but "ok", "ready" or "unavailable" (why the store is unavailable goes to the log)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from greffier.core.errors import GreffierError
from greffier.core.log import get_logger
from greffier.service.schemas import Health, Readiness
from greffier.service.state import get_state

logger = get_logger("service.health")

router = APIRouter(tags=["health"])

UNAVAILABLE = Readiness(status="unavailable", store="unavailable")


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process answers."""
    return Health()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(request: Request) -> JSONResponse:
    """The transcript store can be read (503 otherwise; the reason goes to the log only)."""
    try:
        get_state(request).store().list_meetings(limit=1)
    except GreffierError as e:
        logger.warning("not ready: %s", e.message)
        return JSONResponse(UNAVAILABLE.model_dump(), status_code=503)
    except Exception as e:  # noqa: BLE001 - a database driver error of any kind
        # The type only: a driver's message may quote bound parameters.
        logger.warning(
            "not ready: the store query failed (%s); check GREFFIER_STORE__URL "
            "and that the database runs",
            type(e).__name__,
        )
        return JSONResponse(UNAVAILABLE.model_dump(), status_code=503)
    return JSONResponse(Readiness(status="ready", store="ok").model_dump())
