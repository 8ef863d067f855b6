"""The OpenAPI schema against the app (schemathesis, in-process ASGI): for every operation and
bounded generated requests, no server error and every response as the schema says.

The caption control routes are left out here: they call the LiveKit server, which unit tests do
not run (tests/integration/test_caption_control.py covers them on the real one)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from greffier.core.config import ServiceSettings, Settings, StoreSettings
from greffier.core.types import Speaker, TranscriptSegment, Word
from greffier.service.app import create_app
from greffier.store.sql import TranscriptStore

pytestmark = pytest.mark.unit

OPERATOR_KEY = "schemathesis-operator-key-0123"
OFFLINE = r"^/api/rooms/"
"""Operations that need the LiveKit server."""


TMP = Path(tempfile.mkdtemp(prefix="greffier-schemathesis-"))
STORE_URL = f"sqlite:///{TMP / 'store.db'}"
BUNDLE = TMP / "web" / "livekit-client" / "dist" / "livekit-client.umd.js"
BUNDLE.parent.mkdir(parents=True)
BUNDLE.write_text("var LivekitClient = {};")
APP = create_app(Settings(
    data_dir=TMP / "data", cache_dir=TMP / "cache", store=StoreSettings(url=STORE_URL),
    service=ServiceSettings(api_keys=[SecretStr(OPERATOR_KEY)], web_assets_dir=TMP / "web",
                            max_upload_mb=1),
))
"""Built at import: schemathesis reads the schema when the module is collected."""
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex=OFFLINE)


@pytest.fixture(scope="module", autouse=True)
def stored_meeting() -> Iterator[None]:
    """A meeting in the store, so that listing and minutes have something to render."""
    store = TranscriptStore(STORE_URL)
    meeting = store.open_meeting("salle-a", title="Weekly")
    store.add_segment(meeting.id, TranscriptSegment(
        "s1", Speaker("alice", "Alice"), 0.5, 1.5, "Bonjour à tous.", "fr",
        (Word(0.5, 1.0, " Bonjour", 0.9), Word(1.0, 1.5, " à tous.", 0.9))))
    store.close()
    yield
    APP.state.greffier.close()
    shutil.rmtree(TMP, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_server_error_and_responses_match_the_schema(case: Any) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
