"""The import graph goes one way down, and ``import greffier`` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "greffier"

# What each layer may import from greffier (itself included).
ALLOWED = {
    "core": {"core"},
    "models": {"core", "models"},
    "asr": {"core", "models", "asr"},
    "diarization": {"core", "models", "diarization"},
    "subtitles": {"core", "models", "asr", "diarization", "subtitles"},
    "evaluation": {"core", "models", "asr", "diarization", "subtitles", "evaluation"},
    "store": {"core", "models", "subtitles", "store"},
    "livekit": {"core", "models", "subtitles", "livekit"},
    "agents": {"core", "models", "asr", "diarization", "subtitles", "store", "livekit", "agents"},
    "service": {
        "core", "models", "asr", "diarization", "subtitles", "store", "livekit", "service",
        "recordings",
    },
}


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
    folder = PACKAGE / layer
    if not folder.is_dir():
        pytest.fail(f"layer {layer} is missing")
    for path in folder.rglob("*.py"):
        bad = greffier_imports(path) - ALLOWED[layer]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


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
        "greffier.core.metrics\n"
        "heavy = [m for m in ('faster_whisper', 'ctranslate2', 'torch', 'pyannote', 'livekit', "
        "'onnxruntime', 'av', 'prometheus_client') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
