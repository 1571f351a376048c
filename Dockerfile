# imgdiff-rt on NVIDIA Triton: the official server image (TensorRT, ONNX Runtime and Python backends).
# Build:  docker build -t imgdiff-rt-triton .
# Run:    docker run --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD/triton_models:/models imgdiff-rt-triton
# The repository comes from `imgdiff-rt triton-repo --bundle DIR --platform tensorrt --out triton_models/`;
# engines are GPU-specific, so missing ones are built at start for the GPU the container runs on.
ARG TRITON_TAG=25.08-py3
FROM nvcr.io/nvidia/tritonserver:${TRITON_TAG}

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 IMGDIFF_RT_REPO=/models

WORKDIR /opt/imgdiff-rt
COPY pyproject.toml README.md ./
COPY imgdiff_rt ./imgdiff_rt
RUN python3 -m pip install --no-cache-dir ".[export,gpu,tensorrt]" && \
    useradd --create-home --uid 1000 imgdiff && \
    mkdir -p /models && chown imgdiff /models

COPY --chmod=755 docker/entrypoint.sh /usr/local/bin/imgdiff-rt-entrypoint

USER imgdiff
EXPOSE 8000 8001 8002
# Triton's /v2/health/ready stays 200 after a Python-backend stub dies, so the check looks at every model's stubs
# (imgdiff_rt/triton/health.py): unhealthy while one is broken, and it reloads that model (explicit model control).
HEALTHCHECK --interval=15s --timeout=60s --start-period=300s --retries=2 \
    CMD python3 -m imgdiff_rt.triton.health --url 127.0.0.1:8000 --reload || exit 1
ENTRYPOINT ["/usr/local/bin/imgdiff-rt-entrypoint"]
