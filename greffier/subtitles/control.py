"""Requests to a room's captioner on the data topic ``greffier.control``, and who may send them.

A message is ``{"action": "stop" | "end" | "minutes"}``. The captioner obeys it when it comes
from an allowed participant (``AgentSettings.control_identities``) or when it carries a
signature made with the deployment's LiveKit API secret (what the service sends with the
server API's ``SendData``: only API-key holders can make one). Anything else is ignored.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

CONTROL_TOPIC = "greffier.control"
MINUTES_TOPIC = "greffier.minutes"
"""Data topic of the captioner's answer: ``{"meeting_id": ..., "files": [...]}``."""
ACTIONS = frozenset({"stop", "end", "minutes"})
"""``stop`` and ``end``: the last finals stored, the minutes written, the captioner leaves;
``minutes``: write the minutes now and go on."""
SIGNATURE_TTL_S = 120.0
"""How long a signed request stays valid (a replayed one is refused after that)."""


@dataclass(frozen=True, slots=True)
class ControlRequest:
    action: str
    room: str = ""
    signed: bool = False


def _mac(secret: str, action: str, room: str, expires: int) -> str:
    msg = f"{action}\n{room}\n{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def signed_request(action: str, room: str, secret: str, *, now: float | None = None) -> bytes:
    """A control message for ``room`` signed with the LiveKit API secret."""
    expires = int((time.time() if now is None else now) + SIGNATURE_TTL_S)
    body = {
        "action": action,
        "room": room,
        "expires": expires,
        "signature": _mac(secret, action, room, expires),
    }
    return json.dumps(body).encode()


def parse_request(
    data: bytes, room: str, secret: str, *, now: float | None = None
) -> ControlRequest | None:
    """The request in ``data`` (``signed`` when its signature for ``room`` holds and has not
    expired), or None when it is malformed or names no known action."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("action") not in ACTIONS:
        return None
    action = str(body["action"])
    signature, expires = body.get("signature"), body.get("expires")
    signed = False
    if isinstance(signature, str) and isinstance(expires, int) and body.get("room") == room:
        fresh = expires >= (time.time() if now is None else now)
        signed = fresh and hmac.compare_digest(signature, _mac(secret, action, room, expires))
    return ControlRequest(action=action, room=room, signed=signed)


def allowed_sender(identity: str | None, patterns: Sequence[str]) -> bool:
    """True when a participant's identity matches one of the allowed patterns (fnmatch)."""
    return bool(identity) and any(fnmatch.fnmatchcase(identity or "", p) for p in patterns)
