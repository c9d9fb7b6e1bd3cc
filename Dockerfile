# syntax=docker/dockerfile:1
# langsmith-bridge: a two-stage image. The builder makes a wheel of this project and installs it
# with the aws, vault, gcp and serve extras into /opt/venv (serve: the Deployment mode's HTTP
# server); the runtime stage copies only that venv.
#
#   docker build --build-arg VERSION=0.1.0 --build-arg SOURCE_URL=https://<your repo> \
#     -t langsmith-bridge:0.1.0 .
#
# The runtime image runs as uid 10001 and writes nothing outside /tmp (an emptyDir in the Helm
# chart) and the state file's folder, which the bridge's config file names ([state] path).

FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv

# Only what the wheel is built from (see .dockerignore).
COPY pyproject.toml README.md LICENSE MANIFEST.in CHANGELOG.md ./
COPY bridge ./bridge
COPY providers ./providers

# Every dependency ships binary wheels for linux/amd64 and arm64, so no compiler is needed here
# either; pip compiles the bytecode at install time, so the read-only runtime never has to.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install "$(ls /wheels/langsmith_bridge-*.whl)[aws,vault,gcp,serve]" \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/venv/bin/langsmith-bridge --version


FROM python:3.11-slim AS runtime

ARG VERSION=0.1.0
ARG SOURCE_URL=""
ARG REVISION=""

LABEL org.opencontainers.image.title="langsmith-bridge" \
      org.opencontainers.image.description="Rotates LangSmith service keys into secret stores; revokes an old key only after its consumers acknowledge the new one." \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# A system user with no login shell and no home directory: nothing is written under $HOME.
RUN groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin bridge

COPY --from=builder /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    LANGSMITH_BRIDGE_CONFIG=/etc/langsmith-bridge/bridge.toml

WORKDIR /tmp
USER 10001:10001

ENTRYPOINT ["langsmith-bridge"]
CMD ["run"]
