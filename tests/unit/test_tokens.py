"""LiveKit access tokens as greffier signs them (decoded with the deployment's secret)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from greffier.core.config import LiveKitSettings
from greffier.livekit.tokens import make_token

pytestmark = pytest.mark.unit

LK = LiveKitSettings()


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token, LK.api_secret.get_secret_value(), algorithms=["HS256"], issuer=LK.api_key
    )
    return decoded


def test_a_participant_token_joins_one_room_and_may_publish_and_subscribe() -> None:
    c = claims(make_token(LK, identity="alice", room="salle a"))
    assert (c["sub"], c["name"]) == ("alice", "alice")
    video = c["video"]
    assert video["roomJoin"] is True and video["room"] == "salle a"
    assert video["canPublish"] and video["canSubscribe"] and video["canPublishData"]
    assert "canUpdateOwnMetadata" not in video and "attributes" not in c
    assert 3590 <= c["exp"] - c["nbf"] <= 3610


def test_grants_attributes_and_lifetime_are_the_callers() -> None:
    c = claims(make_token(
        LK, identity="v", room="r", name="Viewer", attributes={"k": "1"}, can_publish=False,
        can_subscribe=False, can_publish_data=False, can_update_own_metadata=False,
        hidden=True, ttl_s=600,
    ))
    video = c["video"]
    assert c["name"] == "Viewer" and c["attributes"] == {"k": "1"} and video["hidden"] is True
    for grant in ("canPublish", "canSubscribe", "canPublishData", "canUpdateOwnMetadata"):
        assert video[grant] is False, grant
    assert 590 <= c["exp"] - c["nbf"] <= 610
