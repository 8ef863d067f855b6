"""LiveKit access tokens: the one place greffier signs a participant's grants (the demo's,
the tests' and the benchmarks' participants, the caption page's viewer).

``livekit.api`` is imported when a token is made, so a module that imports this one (the
service) does not load LiveKit until it signs something.
"""

from __future__ import annotations

from datetime import timedelta

from greffier.core.config import LiveKitSettings


def make_token(
    lk: LiveKitSettings,
    *,
    identity: str,
    room: str,
    name: str = "",
    attributes: dict[str, str] | None = None,
    can_publish: bool = True,
    can_subscribe: bool = True,
    can_publish_data: bool = True,
    can_update_own_metadata: bool | None = None,
    hidden: bool = False,
    ttl_s: float = 3600,
) -> str:
    """A participant's access token for ``room``, signed with the deployment's API secret
    (``name`` defaults to the identity; ``can_update_own_metadata`` None: LiveKit's
    default)."""
    from livekit import api

    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=can_publish,
        can_subscribe=can_subscribe,
        can_publish_data=can_publish_data,
        can_update_own_metadata=can_update_own_metadata,
        hidden=hidden,
    )
    token = (
        api.AccessToken(lk.api_key, lk.api_secret.get_secret_value())
        .with_identity(identity)
        .with_name(name or identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=ttl_s))
    )
    if attributes:
        token = token.with_attributes(attributes)
    return token.to_jwt()
