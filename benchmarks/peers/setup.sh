#!/usr/bin/env bash
# Install the open streaming-Whisper peers that greffier is compared with, each in its own
# virtual environment outside the repository: ~/.cache/greffier/peers/<name>/venv.
# Idempotent: a venv that already holds the pinned version is left alone.
#
#   bash benchmarks/peers/setup.sh                 # both peers
#   bash benchmarks/peers/setup.sh whisperlive     # one of them
#
# Pinned versions (the newest on PyPI when this was written):
#   whisperlivekit 0.2.26   (WhisperLiveKit, QuentinFuxa/WhisperLiveKit)
#   whisper-live   0.10.0   (WhisperLive, collabora/WhisperLive)
# Each venv's full resolution is written to ~/.cache/greffier/peers/<name>/freeze.txt.
set -euo pipefail

ROOT="${GREFFIER_PEERS_DIR:-$HOME/.cache/greffier/peers}"
UV="${UV:-$HOME/.cache/greffier/tools/bin/uv}"
PYTHON="${PEERS_PYTHON:-python3.11}"

if [ ! -x "$UV" ]; then
  if command -v uv >/dev/null 2>&1; then UV="$(command -v uv)"; else
    echo "uv not found at $UV (set UV=...)" >&2; exit 1
  fi
fi

# name|distribution|version|import check|uv excludes (one per line)
PEERS=(
  "whisperlivekit|whisperlivekit|0.2.26|whisperlivekit|"
  # PyAudio is only the microphone/playback side of WhisperLive's own client (which this
  # benchmark does not use); building it needs the portaudio C headers, so it is left out.
  "whisper-live|whisper-live|0.10.0|whisper_live.backend.faster_whisper_backend|pyaudio"
)

want="${*:-whisperlivekit whisperlive}"

for spec in "${PEERS[@]}"; do
  IFS='|' read -r dist _ version module excludes <<<"$spec"
  name="${dist//-/}"                       # whisperlivekit, whisperlive
  case " $want " in *" $name "*) ;; *) continue ;; esac
  dir="$ROOT/$name/venv"
  py="$dir/bin/python"
  if [ -x "$py" ] && "$py" - "$dist" "$version" "$module" <<'PY' 2>/dev/null
import importlib, importlib.metadata as md, sys
dist, version, module = sys.argv[1:]
assert md.version(dist) == version
importlib.import_module(module)
PY
  then
    echo "[peers] $name $version already installed in $dir"
    continue
  fi
  echo "[peers] installing $name $version into $dir"
  mkdir -p "$ROOT/$name"
  [ -x "$py" ] || "$UV" venv --python "$PYTHON" "$dir"
  args=()
  if [ -n "$excludes" ]; then
    exfile="$ROOT/$name/excludes.txt"
    printf '%s\n' $excludes >"$exfile"
    args+=(--excludes "$exfile")
  fi
  # PyTorch's CPU-only wheel index is not a PyPI index, so the ordinary PyPI torch is used;
  # run_peer.py hides any GPU (CUDA_VISIBLE_DEVICES="") and forces device=cpu, int8.
  "$UV" pip install --python "$py" "${args[@]}" "$dist==$version"
  "$UV" pip freeze --python "$py" >"$ROOT/$name/freeze.txt"
  echo "[peers] $name: $(grep -i -E '^(faster-whisper|ctranslate2|torch)==' "$ROOT/$name/freeze.txt" | tr '\n' ' ')"
done
