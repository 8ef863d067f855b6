"""Access control of the HTTP service: who a bearer token proves (operator key, member token
for one room), and every route refusing an anonymous or foreign caller."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from fastapi import HTTPException
from pydantic import SecretStr

from greffier.core.config import LiveKitSettings, ServiceSettings
from greffier.service.auth import VIEWER_ATTRIBUTE, Caller, is_operator_key, verify_member_token

pytestmark = pytest.mark.unit

LK = LiveKitSettings(url="ws://127.0.0.1:7880", api_key="key-test",
                     api_secret=SecretStr("s" * 40))
OPERATOR_KEY = "operator-key-0123456789"


def member_jwt(room: str, *, identity: str = "alice", ttl_s: float = 600,
               secret: str | None = None, issuer: str | None = None,
               room_join: bool = True, **claims: Any) -> str:
    """A LiveKit-style access token, minted as livekit-api mints them."""
    now = time.time()
    payload = {
        "iss": issuer or LK.api_key, "sub": identity, "nbf": int(now) - 5,
        "exp": int(now + ttl_s), "video": {"roomJoin": room_join, "room": room}, **claims,
    }
    return jwt.encode(payload, secret or LK.api_secret.get_secret_value(), algorithm="HS256")


def status_of(call: Any) -> int:
    with pytest.raises(HTTPException) as e:
        call()
    return e.value.status_code


def test_a_valid_member_token_proves_its_room_and_identity() -> None:
    caller = verify_member_token(member_jwt("salle-a"), LK)
    assert caller == Caller(operator=False, room="salle-a", identity="alice")
    assert caller.may_see("salle-a") and not caller.may_see("salle-b")


def test_the_token_of_livekit_api_is_accepted() -> None:
    from livekit import api

    token = (api.AccessToken(LK.api_key, LK.api_secret.get_secret_value())
             .with_identity("bob").with_grants(api.VideoGrants(room_join=True, room="r1"))
             .to_jwt())
    assert verify_member_token(token, LK) == Caller(operator=False, room="r1", identity="bob")


@pytest.mark.parametrize("token", [
    member_jwt("salle-a", ttl_s=-60),                      # expired
    member_jwt("salle-a", secret="x" * 40),                # signed with another secret
    member_jwt("salle-a", issuer="another-key"),           # another deployment's key
    member_jwt("salle-a", room_join=False),                # no room grant
    member_jwt("", ),                                      # no room
    member_jwt("salle-a", attributes={VIEWER_ATTRIBUTE: "1"}),  # a caption page's token
    jwt.encode({"iss": LK.api_key, "video": {"roomJoin": True, "room": "salle-a"}},
               LK.api_secret.get_secret_value(), algorithm="HS256"),  # never expires
    jwt.encode({"iss": LK.api_key, "exp": int(time.time()) + 60,
                "video": {"roomJoin": True, "room": "salle-a"}}, None, algorithm="none"),
    "not-a-jwt",
])
def test_tokens_that_prove_no_membership_are_401(token: str) -> None:
    assert status_of(lambda: verify_member_token(token, LK)) == 401


def test_operator_keys_match_exactly() -> None:
    service = ServiceSettings(api_keys=[SecretStr(OPERATOR_KEY), SecretStr("k" * 20)])
    assert is_operator_key(OPERATOR_KEY, service)
    assert is_operator_key("k" * 20, service)
    assert not is_operator_key(OPERATOR_KEY[:-1], service)
    assert not is_operator_key("", service)
    assert not is_operator_key(OPERATOR_KEY, ServiceSettings())


def test_short_operator_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        ServiceSettings(api_keys=[SecretStr("short")])
