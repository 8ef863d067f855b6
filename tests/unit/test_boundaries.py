"""The import graph goes one way down, and ``import greffier`` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "greffier"

# What each part of greffier imports from greffier (itself included): today's import graph,
# exactly (test_the_table_is_the_graph). A new edge is a design decision: add it here on purpose,
# going one way down (core <- models <- asr, diarization <- subtitles <- store, livekit <- agents,
# service; recordings, demo and cli on top).
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "models": {"core", "models"},
    "asr": {"core", "models", "asr"},
    "diarization": {"core", "models", "diarization"},
    "subtitles": {"core", "diarization", "subtitles"},
    "store": {"core", "subtitles", "store"},
    "livekit": {"core", "subtitles", "livekit"},
    "evaluation": {"core", "models", "asr", "diarization", "evaluation"},
    "agents": {"core", "models", "asr", "diarization", "subtitles", "store", "livekit", "agents"},
    "service": {"core", "models", "asr", "subtitles", "store", "livekit", "recordings", "service"},
    "recordings": {"core", "models", "asr", "diarization", "subtitles"},
    "demo": {"core", "subtitles", "livekit"},
    "cli": {
        "core", "models", "evaluation", "livekit", "agents", "service", "recordings", "demo",
    },
    "__main__": {"cli"},
    "__init__": set(),
}


def part_files(part: str) -> list[Path]:
    """The source files of a part of the package: a folder's modules, or one module."""
    folder = PACKAGE / part
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{part}.py"]


def greffier_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "greffier" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_downwards(layer: str) -> None:
    files = part_files(layer)
    if not all(path.is_file() for path in files) or not files:
        pytest.fail(f"layer {layer} is missing")
    for path in files:
        bad = greffier_imports(path) - ALLOWED[layer]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_every_part_of_the_package_is_in_the_table() -> None:
    parts = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()}
    parts = {p for p in parts if (PACKAGE / p).is_dir() or (PACKAGE / f"{p}.py").is_file()}
    parts -= {"__pycache__"}
    assert parts == set(ALLOWED), f"add {sorted(parts - set(ALLOWED))} to ALLOWED"


def test_the_table_is_the_graph() -> None:
    """No allowed edge that no module uses: the table stays the real graph."""
    for part, allowed in ALLOWED.items():
        used = set().union(*(greffier_imports(path) for path in part_files(part)))
        if (PACKAGE / part).is_dir():
            used.add(part)
        assert used == allowed, f"{part}: no module imports {sorted(allowed - used)}"


def test_nothing_but_the_command_line_imports_agents_or_service() -> None:
    for path in PACKAGE.rglob("*.py"):
        top = path.relative_to(PACKAGE).parts[0]
        if top in ("cli.py", "agents", "service"):
            continue
        used = greffier_imports(path)
        assert not used & {"agents", "service"}, path


def test_importing_greffier_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, greffier, greffier.core.config, greffier.core.types, greffier.core.audio, "
        "greffier.asr.engine, greffier.asr.streaming, greffier.subtitles.protocol, greffier.cli, "
        "greffier.core.metrics, greffier.core.log, greffier.models.manager, "
        "greffier.asr.segmenting, greffier.diarization.assign, greffier.livekit.tokens, "
        "greffier.recordings, greffier.service.jobs, greffier.agents.shared_mic, "
        "greffier.agents.takeover\n"
        "heavy = [m for m in ('faster_whisper', 'ctranslate2', 'torch', 'pyannote', 'livekit', "
        "'onnxruntime', 'av', 'prometheus_client') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
