"""Access control of the HTTP service: who a bearer token proves (operator key, member token
for one room), and every route refusing an anonymous or foreign caller."""

from __future__ import annotations

import re
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


# -- every route of the app ----------------------------------------------------------------

PUBLIC = {
    ("GET", "/health"), ("GET", "/ready"), ("GET", "/openapi.json"), ("GET", "/docs"),
    ("GET", "/docs/assets/{name}"), ("GET", "/live/{room}"), ("GET", "/static/live.js"),
    ("GET", "/static/livekit-client.js"),
}
"""Open to anyone, holding no data: probes, the API description, the caption page's files."""
ROOM, FOREIGN = "salle-a", "salle-b"


def all_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route, those of included routers too."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        items = list(contexts()) if callable(contexts) else [route]
        for r in items:
            found += [(m, r.path) for m in sorted(r.methods or ()) if m != "HEAD"]
    return found


def test_the_route_walk_finds_included_routers(tmp_path: Any) -> None:
    """The walk above finds the routes (a FastAPI upgrade must not empty it)."""
    app = make_app(tmp_path)
    routes = all_routes(app)
    assert ("GET", "/api/meetings/{meeting_id}") in routes and ("GET", "/health") in routes
    assert ("DELETE", "/api/rooms/{room}/captions") in routes


def make_app(tmp_path: Any) -> Any:
    from greffier.core.config import Settings, StoreSettings
    from greffier.service.app import create_app

    settings = Settings(
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", livekit=LK,
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
        service=ServiceSettings(api_keys=[SecretStr(OPERATOR_KEY)],
                                web_assets_dir=tmp_path / "web"),
    )
    return create_app(settings)


@pytest.fixture
def rooms(tmp_path: Any) -> dict[str, str]:
    """One meeting in each of two rooms, in a real SQLite store."""
    from greffier.core.types import Speaker, TranscriptSegment
    from greffier.store.sql import TranscriptStore

    store = TranscriptStore(f"sqlite:///{tmp_path / 'store.db'}")
    ids = {}
    for room in (ROOM, FOREIGN):
        meeting = store.open_meeting(room, title=f"Meeting {room}")
        store.add_segment(meeting.id, TranscriptSegment(
            f"{room}-1", Speaker(f"id-{room}", f"Speaker of {room}"), 0.5, 1.5,
            f"Words said in {room}.", "fr", ()))
        ids[room] = meeting.id
    store.close()
    return ids


def concrete(path: str, meetings: dict[str, str]) -> str:
    """``path`` with its parameters filled for a target in ROOM."""
    return (path.replace("{room}", ROOM).replace("{meeting_id}", meetings[ROOM])
            .replace("{fmt}", "srt").replace("{name}", "x").replace("{job_id}", "job")
            .replace("{id}", "x"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_refuses_anonymous_and_foreign_callers(
    tmp_path: Any, rooms: dict[str, str]
) -> None:
    from fastapi.testclient import TestClient

    app = make_app(tmp_path)
    routes = [r for r in all_routes(app) if r not in PUBLIC]
    assert len(routes) >= 6
    anonymous = [{}, {"Authorization": "Basic YTpi"}, bearer("wrong-key-0123456789"),
                 bearer(member_jwt(ROOM, ttl_s=-60)),
                 bearer(member_jwt(ROOM, secret="x" * 40))]
    foreign = bearer(member_jwt(FOREIGN, identity="mallory"))
    with TestClient(app) as client:
        for method, path in routes:
            url = concrete(path, rooms)
            params = {"room": ROOM}
            for headers in anonymous:
                r = client.request(method, url, params=params, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.status_code)
                assert r.headers.get("www-authenticate") == "Bearer"
            r = client.request(method, url, params=params, headers=foreign)
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert ROOM not in r.text and "Words said" not in r.text


def test_public_routes_reveal_nothing(tmp_path: Any, rooms: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    app = make_app(tmp_path)
    with TestClient(app) as client:
        for method, path in PUBLIC:
            r = client.request(method, concrete(path, rooms))
            assert r.status_code in (200, 404, 503), (path, r.status_code)
            for secret in (*rooms.values(), "Words said", "Speaker of", FOREIGN, OPERATOR_KEY):
                assert secret not in r.text, (path, secret)


def test_a_member_sees_only_their_rooms_meetings(tmp_path: Any, rooms: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    app = make_app(tmp_path)
    with TestClient(app) as client:
        for room, other in ((ROOM, FOREIGN), (FOREIGN, ROOM)):
            member = bearer(member_jwt(room))
            listed = client.get("/api/meetings", headers=member).json()["meetings"]
            assert [m["id"] for m in listed] == [rooms[room]]
            assert client.get("/api/meetings", params={"room": room},
                              headers=member).status_code == 200
            assert client.get("/api/meetings", params={"room": other},
                              headers=member).status_code == 403
            mine = client.get(f"/api/meetings/{rooms[room]}", headers=member)
            assert mine.status_code == 200 and mine.headers["cache-control"] == "no-store"
            assert mine.json()["segments"][0]["text"] == f"Words said in {room}."
            for fmt in ("md", "srt", "vtt", "json", "rttm"):
                own = client.get(f"/api/meetings/{rooms[room]}/minutes.{fmt}", headers=member)
                assert own.status_code == 200 and own.headers["cache-control"] == "no-store"
                theirs = client.get(f"/api/meetings/{rooms[other]}/minutes.{fmt}",
                                    headers=member)
                assert theirs.status_code == 403 and other not in theirs.text
            assert client.get(f"/api/meetings/{rooms[other]}", headers=member).status_code == 403
            token = client.get("/api/token", params={"room": room}, headers=member)
            assert token.status_code == 200 and token.json()["room"] == room
        everything = client.get("/api/meetings", headers=bearer(OPERATOR_KEY)).json()
        assert {m["room"] for m in everything["meetings"]} == {ROOM, FOREIGN}


def test_operator_routes_refuse_members_of_the_room(tmp_path: Any, rooms: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    app = make_app(tmp_path)
    member = bearer(member_jwt(ROOM))
    with TestClient(app) as client:
        for method in ("POST", "DELETE"):
            r = client.request(method, f"/api/rooms/{ROOM}/captions", headers=member)
            assert r.status_code == 403 and "operator" in r.json()["detail"]


def test_docs_are_served_from_local_files_or_off(tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from greffier.service.app import swagger_assets

    with TestClient(make_app(tmp_path)) as client:
        docs = client.get("/docs")
        if swagger_assets() is None:
            assert docs.status_code == 404
            return
        assert docs.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        assert urls and all(u.startswith("/docs/assets/") for u in urls), urls
        assert "http" not in docs.text.replace("http-equiv", "")
        for url in urls:
            assert client.get(url).status_code == 200
        assert client.get("/docs/assets/..%2Fcore.py").status_code == 404
        assert client.get("/redoc").status_code == 404


# -- greffier serve ---------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.4", "meet.example.org"])
def test_serve_refuses_a_public_host_without_keys_or_with_the_dev_secret(host: str) -> None:
    from greffier.core.config import DEV_API_SECRET, Settings
    from greffier.core.errors import ConfigurationError
    from greffier.service.app import check_exposure, serve

    with pytest.raises(ConfigurationError, match="GREFFIER_SERVICE__API_KEYS"):
        serve(Settings(livekit=LK, service=ServiceSettings()), host=host)
    dev = LK.model_copy(update={"api_secret": SecretStr(DEV_API_SECRET)})
    keyed = ServiceSettings(api_keys=[SecretStr(OPERATOR_KEY)])
    with pytest.raises(ConfigurationError, match="LIVEKIT_API_SECRET"):
        check_exposure(Settings(livekit=dev, service=keyed), host)
    check_exposure(Settings(livekit=LK, service=keyed), host)
    for loopback in ("127.0.0.1", "localhost", "::1"):
        check_exposure(Settings(livekit=dev, service=ServiceSettings()), loopback)


# -- greffier.control requests ------------------------------------------------------------------

def test_control_requests_are_obeyed_when_signed_for_the_room() -> None:
    from greffier.subtitles.control import parse_request, signed_request

    secret = LK.api_secret.get_secret_value()
    now = 1_000_000.0
    signed = signed_request("stop", ROOM, secret, now=now)
    assert parse_request(signed, ROOM, secret, now=now).signed  # type: ignore[union-attr]
    for data, room, key, at in [
        (signed, FOREIGN, secret, now),              # replayed in another room
        (signed, ROOM, "y" * 40, now),               # another deployment
        (signed, ROOM, secret, now + 600),           # expired
        (signed.replace(b'"stop"', b'"minutes"'), ROOM, secret, now),  # altered
        (b'{"action": "stop"}', ROOM, secret, now),  # unsigned
    ]:
        request = parse_request(data, room, key, now=at)
        assert request is not None and not request.signed
    assert parse_request(b"not json", ROOM, secret) is None
    assert parse_request(b'{"action": "explode"}', ROOM, secret) is None


def test_control_senders_are_matched_by_identity_patterns() -> None:
    from greffier.subtitles.control import allowed_sender

    patterns = ["meet-backend", "ops-*"]
    assert allowed_sender("meet-backend", patterns) and allowed_sender("ops-7", patterns)
    assert not allowed_sender("alice", patterns) and not allowed_sender("Ops-7", patterns)
    assert not allowed_sender(None, patterns) and not allowed_sender("meet-backend", [])
