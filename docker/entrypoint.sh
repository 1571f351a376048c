#!/usr/bin/env bash
# Build missing TensorRT engines for this GPU (graph folders holding model.onnx but no 1/model.plan), then
# hand the process over to tritonserver (exec: it receives SIGTERM from `docker stop` directly).
set -euo pipefail
REPO="${IMGDIFF_RT_REPO:-/models}"
python3 -m imgdiff_rt.triton.engines "$REPO"
# explicit model control, every model loaded at start: the HEALTHCHECK reloads a model whose stub died
exec tritonserver --model-repository="$REPO" --exit-timeout-secs=30 \
    --model-control-mode=explicit --load-model='*' "$@"
