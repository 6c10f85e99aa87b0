# syntax=docker/dockerfile:1
# The KServe custom predictor: kubeface's recognizer behind the kserve model server. It contains only
# what serving needs (OpenVINO, OpenCV, scikit-learn, numpy, Pillow, minio, kserve): no
# TensorFlow and no kfp. KServe's storage initializer puts the model version in /mnt/models.
# Build from the repository root with `make images`.
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
LABEL org.opencontainers.image.title="kubeface-predictor" \
      org.opencontainers.image.description="kubeface KServe predictor" \
      org.opencontainers.image.version="${KUBEFACE_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/kubeface \
    KUBEFACE_HOME=/home/kubeface/.kubeface \
    KUBEFACE_CACHE=/home/kubeface/.cache/kubeface

# A non-root user in group 0, so the image also runs under OpenShift's arbitrary user IDs. The
# file written to intel/ is OpenVINO's telemetry consent file; "0" means no usage data is sent.
RUN useradd --uid 1000 --gid 0 --create-home --home-dir /home/kubeface kubeface \
    && mkdir -p /mnt/models /home/kubeface/intel \
    && printf 0 > /home/kubeface/intel/openvino_telemetry \
    && chown -R 1000:0 /mnt/models /home/kubeface \
    && chmod -R g=u /mnt/models /home/kubeface

COPY images/constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /tmp/wheels
# kubeface itself without its dependencies, which would bring kfp, matplotlib and the weights.
RUN pip install --constraint /tmp/constraints.txt \
        "openvino==2026.4.1" \
        "opencv-python-headless==5.0.0.93" \
        "scikit-learn==1.9.1" \
        "numpy==2.4.6" \
        "pillow==13.0.0" \
        "minio==7.2.20" \
        "kserve==0.21.0" \
    && pip install --no-deps /tmp/wheels/kubeface-*.whl \
    && rm -rf /tmp/wheels /tmp/constraints.txt

USER 1000
WORKDIR /home/kubeface
EXPOSE 8080 8081
ENTRYPOINT ["kubeface", "serve"]
CMD ["--model", "/mnt/models", "--host", "0.0.0.0", "--http-port", "8080", "--grpc-port", "8081"]
