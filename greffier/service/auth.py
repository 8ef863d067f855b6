"""Who is calling: an operator (a key from ``GREFFIER_SERVICE__API_KEYS``) or a member of one
room (a LiveKit access token for that room, signed with the deployment's API secret).

Every route but ``/health``, ``/ready`` and the static caption page depends on one of
``authenticate``, ``require_operator`` or ``require_room_access``. No credentials or bad ones:
401; a member asking for another room, or for an operator route: 403.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from greffier.core.config import LiveKitSettings, ServiceSettings
from greffier.core.log import get_logger
from greffier.service.schemas import ErrorOut

logger = get_logger("service.auth")

VIEWER_ATTRIBUTE = "greffier.viewer"
"""Set on the caption page's viewer tokens: they are not credentials for this service (a
viewer token cannot be traded for another one, so a member's access ends with their token)."""
LEEWAY_S = 10.0
"""Clock skew tolerated on a member token's expiry."""

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no credentials, or invalid ones"},
    403: {"model": ErrorOut, "description": "credentials for another room, or not an operator"},
}
"""OpenAPI responses of an authenticated route."""

bearer = HTTPBearer(
    auto_error=False,
    description="An operator key (GREFFIER_SERVICE__API_KEYS) or a LiveKit access token "
    "for the room",
)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: an operator, or a member of ``room``."""

    operator: bool
    room: str | None = None
    identity: str | None = None

    def may_see(self, room: str) -> bool:
        return self.operator or self.room == room


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def is_operator_key(token: str, service: ServiceSettings) -> bool:
    """True when ``token`` is one of the configured operator keys (constant-time compare)."""
    given = token.encode()
    found = False
    for key in service.api_keys:
        found |= hmac.compare_digest(given, key.get_secret_value().encode())
    return found


def verify_member_token(token: str, lk: LiveKitSettings) -> Caller:
    """The member that a LiveKit access token proves; raises 401 when it does not prove one."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=lk.api_secret.get_secret_value(),
            algorithms=["HS256"],
            issuer=lk.api_key,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iss"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise _unauthorized("the access token has expired") from e
    except jwt.PyJWTError as e:
        # Never log the token or the library's message (it may quote claims).
        raise _unauthorized(
            "invalid credentials: expected an operator key or a LiveKit access token "
            "for the room, signed by this deployment"
        ) from e
    video = claims.get("video")
    room = video.get("room") if isinstance(video, dict) else None
    if not isinstance(video, dict) or video.get("roomJoin") is not True or not room:
        raise _unauthorized("the access token does not grant joining a room")
    attributes = claims.get("attributes")
    if isinstance(attributes, dict) and attributes.get(VIEWER_ATTRIBUTE):
        raise _unauthorized("a caption viewer token is not a credential for this service")
    identity = claims.get("sub")
    return Caller(
        operator=False, room=str(room), identity=str(identity) if identity is not None else None
    )


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller, from ``Authorization: Bearer ...``; 401 without valid credentials."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized(
            "credentials required: Authorization: Bearer <operator key or LiveKit access token>"
        )
    settings = request.app.state.greffier.settings
    token = credentials.credentials
    if is_operator_key(token, settings.service):
        return Caller(operator=True)
    return verify_member_token(token, settings.livekit)


Authenticated = Annotated[Caller, Depends(authenticate)]


def require_operator(caller: Authenticated) -> Caller:
    """An operator; 403 for a room member."""
    if not caller.operator:
        raise HTTPException(403, detail="this route needs an operator key")
    return caller


def check_room(caller: Caller, room: str) -> None:
    """403 unless ``caller`` may see ``room``."""
    if not caller.may_see(room):
        raise HTTPException(403, detail="the credentials are for another room")


def require_room_access(room: str, caller: Authenticated) -> Caller:
    """An operator, or a member of ``room`` (the route's ``room`` path or query parameter)."""
    check_room(caller, room)
    return caller


Operator = Annotated[Caller, Depends(require_operator)]
RoomMember = Annotated[Caller, Depends(require_room_access)]
