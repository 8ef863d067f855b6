#!/usr/bin/env bash
# Install WhisperX (m-bain/whisperX), the offline transcription peer of benchmarks/diarization.py,
# in its own virtual environment outside the repository: ~/.cache/greffier/peers/whisperx/venv.
# Idempotent: a venv that already holds the pinned version (and imports) is left alone.
#
#   bash benchmarks/peers/setup_whisperx.sh
#
# Pinned version (the newest on PyPI when this was written): whisperx 3.8.6.
# The full resolution is written to ~/.cache/greffier/peers/whisperx/freeze.txt.
# torch comes from PyPI (the CUDA build; it runs on the CPU, run_whisperx.py hides any GPU).
set -euo pipefail

ROOT="${GREFFIER_PEERS_DIR:-$HOME/.cache/greffier/peers}"
UV="${UV:-$HOME/.cache/greffier/tools/bin/uv}"
PYTHON="${PEERS_PYTHON:-python3.11}"
DIST=whisperx
VERSION=3.8.6

if [ ! -x "$UV" ]; then
  if command -v uv >/dev/null 2>&1; then UV="$(command -v uv)"; else
    echo "uv not found at $UV (set UV=...)" >&2; exit 1
  fi
fi

dir="$ROOT/whisperx/venv"
py="$dir/bin/python"
if [ -x "$py" ] && "$py" - "$DIST" "$VERSION" <<'PY' 2>/dev/null
import importlib.metadata as md, sys
dist, version = sys.argv[1:]
assert md.version(dist) == version
import whisperx.asr  # noqa: F401  (the transcription half; alignment/diarization unused)
PY
then
  echo "[peers] whisperx $VERSION already installed in $dir"
  exit 0
fi

echo "[peers] installing whisperx $VERSION into $dir"
mkdir -p "$ROOT/whisperx"
[ -x "$py" ] || "$UV" venv --python "$PYTHON" "$dir"
"$UV" pip install --python "$py" "$DIST==$VERSION"
"$UV" pip freeze --python "$py" >"$ROOT/whisperx/freeze.txt"
echo "[peers] whisperx: $(grep -i -E '^(whisperx|faster-whisper|ctranslate2|torch|pyannote-audio)==' "$ROOT/whisperx/freeze.txt" | tr '\n' ' ')"
