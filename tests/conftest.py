"""Shared fixtures. Every test module declares exactly one category marker (unit or
integration); the data folder is found through ``Settings.speech_data``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

from greffier.core.config import Settings

CATEGORIES = ("unit", "integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marks = [m.name for m in item.iter_markers() if m.name in CATEGORIES]
        if len(set(marks)) != 1:
            raise pytest.UsageError(
                f"{item.nodeid}: a test module needs exactly one of the markers {CATEGORIES}"
            )


@dataclass(frozen=True)
class Clip:
    """One recording of the shared speech data."""

    id: str
    audio: Path
    reference: Path
    language: str
    duration: float

    @property
    def text(self) -> str:
        return self.reference.read_text(encoding="utf-8").strip()


def load_clips(root: Path) -> dict[str, Clip]:
    manifest = root / "manifest.tsv"
    if not manifest.is_file():
        raise FileNotFoundError(
            f"the speech data is missing: no {manifest} "
            "(set GREFFIER_SPEECH_DATA to the folder holding manifest.tsv)"
        )
    clips = {}
    with manifest.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            clips[row["id"]] = Clip(
                row["id"], root / row["audio"], root / row["reference"], row["language"],
                float(row["duration_s"]),
            )
    return clips


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def clips(settings: Settings) -> dict[str, Clip]:
    """The shared recordings by id (a missing data folder fails the test, never skips it)."""
    return load_clips(settings.speech_data)
