"""What one app instance holds: settings, the transcript store (opened on first use), the
transcription queue; and the FastAPI dependencies that hand them, and the caption rules a
request names, to routes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request

from greffier.core.config import ServiceSettings, Settings
from greffier.core.errors import ConfigurationError, GreffierError, StoreError
from greffier.core.log import get_logger
from greffier.service.jobs import JobQueue, Runner, transcription_runner
from greffier.store.sql import TranscriptStore
from greffier.subtitles.cues import CueRules, cue_rules

logger = get_logger("service")

BUNDLE_NAMES = ("livekit-client.umd.js", "livekit-client.umd.min.js")
"""Browser bundles of the livekit-client npm package, in order of preference."""
MAX_KEPT_JOBS = 100
"""Finished transcriptions whose status and minutes stay in memory (the oldest go first)."""


class ServiceState:
    """Shared by the routes of one app."""

    def __init__(self, settings: Settings, runner: Runner | None = None) -> None:
        self.settings = settings
        self.service: ServiceSettings = settings.service
        self.upload_dir = settings.data_dir / "uploads"
        self.jobs = JobQueue(
            runner or transcription_runner(settings),
            max_queued=self.service.max_queued_jobs,
            max_kept=MAX_KEPT_JOBS,
        )
        self._store: TranscriptStore | None = None
        self._store_lock = threading.Lock()

    @property
    def max_upload_bytes(self) -> int:
        return int(self.service.max_upload_mb * 1_000_000)

    @property
    def livekit_client_dir(self) -> Path:
        """The extracted livekit-client npm package (``scripts/fetch-web-deps``)."""
        return self.service.web_assets_dir / "livekit-client"

    def livekit_bundle(self) -> Path | None:
        """The livekit-client browser bundle, or None when it has not been fetched."""
        for name in BUNDLE_NAMES:
            path = self.livekit_client_dir / "dist" / name
            if path.is_file():
                return path
        return None

    def store(self) -> TranscriptStore:
        """The transcript store, opened on first use (blocking); raises StoreError."""
        with self._store_lock:
            if self._store is None:
                try:
                    self._store = TranscriptStore(self.settings.store_url)
                except OSError as e:
                    raise StoreError(
                        f"cannot open the transcript store: {e}",
                        hint="check GREFFIER_STORE__URL and GREFFIER_DATA_DIR",
                    ) from e
            return self._store

    def close(self) -> None:
        self.jobs.close()
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.greffier
    return state


def get_store(request: Request) -> TranscriptStore:
    """The store, or a 503 saying why it cannot be reached (call from sync routes only)."""
    try:
        return get_state(request).store()
    except GreffierError as e:  # StoreError, or the store's missing dependency
        logger.warning("transcript store unavailable: %s", e.message)
        raise HTTPException(503, detail=f"the transcript store is unavailable: {e}") from e


def caption_rules(
    profile: Annotated[str, Query(description="caption rules: default or fr-tv")] = "default",
) -> CueRules:
    """The cue rules of the request's ``profile``; 422 naming the known ones otherwise."""
    try:
        return cue_rules(profile)
    except ConfigurationError as e:
        raise HTTPException(422, detail=str(e)) from e


CaptionRules = Annotated[CueRules, Depends(caption_rules)]
"""A route parameter: the cue rules of the request's ``?profile=`` (422 for an unknown one)."""
