#!/usr/bin/env bash
# GPU readiness check: PyTorch eager fp32 vs fp16/bf16 vs torch.compile (and a static KV cache for BLIP's batched
# generation) for the segmenter, CLIP and BLIP vision towers, on an NVIDIA GPU, without TensorRT. Prints one
# Markdown table (and writes it with the JSON rows to $OUT, default benchmarks/results/gpu-check/). Random
# weights: timing only. The whole run stops starting new variants after BUDGET_S seconds (default 420, so it
# ends well inside 8 minutes). Extra arguments go to benchmarks/gpu_check.py (e.g. --no-compile, --iters 10).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/results/gpu-check}
mkdir -p "$OUT"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: PyTorch sees no CUDA GPU here; nothing to measure (benchmarks/gpu_check.py --device cpu --tiny checks the script)" >&2
  exit 3
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
timeout 480 "$PY" benchmarks/gpu_check.py --budget-s "${BUDGET_S:-420}" --json "$OUT/gpu_check.json" "$@" | tee "$OUT/gpu_check.md"
