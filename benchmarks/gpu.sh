#!/usr/bin/env bash
# One prepared run for the GPU machine (under 10 minutes): concurrent real-time streams and
# their latency with the largest shipped model (base), float16, batched decoding. Needs the
# project's virtual environment (./scripts/setup) on that machine. Writes
# benchmarks/results/streaming_gpu.json, .md and .png (streams against final latency), to be
# committed beside the CPU figures; then `greffier bench report` adds them to benchmarks/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export GREFFIER_ASR__MODEL="${GREFFIER_ASR__MODEL:-base}"
export GREFFIER_ASR__DEVICE=cuda
export GREFFIER_ASR__MAX_BATCH_SIZE="${GREFFIER_ASR__MAX_BATCH_SIZE:-16}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 560 .venv/bin/python -m benchmarks.streaming --capacity-only --max-streams 64 \
  --languages en --output streaming_gpu --conditions "${CONDITIONS:-dedicated GPU machine}"
