# syntax=docker/dockerfile:1
#
# One Dockerfile for the three services; pick one with --target:
#
#   docker build --target gateway   -t ghcr.io/tessera/tessera-gateway:0.1.0 .
#   docker build --target catalog   -t ghcr.io/tessera/tessera-catalog:0.1.0 .
#   docker build --target inference -t ghcr.io/tessera/tessera-inference:0.1.0 .
#
# Each image holds a virtual environment with exactly what uv.lock pins for that
# service (no dev or train groups, no local tooling: `tessera-stack` is not in any image),
# on the same slim Python the environment was built with, run by a non-root user.
# docs/deploy.md explains the choices; deploy/tests/test_dockerfile.py checks them.

# The builder and the runtime must share this image: the venv's python is a
# symlink to the base image's interpreter.
ARG PYTHON_IMAGE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------------------
# builder: uv plus the workspace manifests. uv checks uv.lock against every
# member's pyproject.toml (--locked), so all of them are copied, whatever the service.
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY packages/contracts/pyproject.toml packages/contracts/
COPY packages/runtime/pyproject.toml packages/runtime/
COPY packages/stack/pyproject.toml packages/stack/
COPY packages/client/pyproject.toml packages/client/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/catalog/pyproject.toml services/catalog/
COPY services/inference/pyproject.toml services/inference/

# ---------------------------------------------------------------------------
# One venv per service. Third-party dependencies come first, in their own layer,
# so editing our code does not reinstall them. --no-editable installs our own
# packages as wheels into the venv: the runtime needs the venv and nothing else.
# --no-default-groups: the workspace root's default groups (dev, train) are for
# developers, never for an image.
FROM builder AS gateway-venv
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-default-groups --no-install-workspace --package tessera-gateway
COPY packages/contracts/src packages/contracts/src
COPY packages/runtime/src packages/runtime/src
COPY services/gateway/src services/gateway/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-default-groups --no-editable --package tessera-gateway

FROM builder AS catalog-venv
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-default-groups --no-install-workspace --package tessera-catalog
COPY packages/contracts/src packages/contracts/src
COPY packages/runtime/src packages/runtime/src
COPY services/catalog/src services/catalog/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-default-groups --no-editable --package tessera-catalog

FROM builder AS inference-venv
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-default-groups --no-install-workspace --package tessera-inference
COPY packages/contracts/src packages/contracts/src
COPY packages/runtime/src packages/runtime/src
COPY services/inference/src services/inference/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-default-groups --no-editable --package tessera-inference

# ---------------------------------------------------------------------------
# runtime: the slim base without uv, compilers or pip. The venv was compiled to
# bytecode at build time, so a read-only root filesystem costs nothing at import.
FROM ${PYTHON_IMAGE} AS runtime
# pip/setuptools/wheel are installers the services never run; dropping them
# leaves less to patch. The numeric ids let Kubernetes verify runAsNonRoot.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && groupadd --system --gid 10001 tessera \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin tessera
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001

# Exec-form CMDs: `python -m tessera_<name>` is PID 1 and receives SIGTERM itself;
# it runs uvicorn with the service's header limits and timeouts (its settings,
# docs/operations.md), finishes in-flight requests for up to
# <NAME>_GRACEFUL_SHUTDOWN_S seconds, then runs the lifespan shutdown. Kubernetes'
# terminationGracePeriodSeconds must cover the preStop sleep plus this
# (deploy/tests checks it). Access logs come from the services' own middleware
# (JSON, with request ids), so uvicorn's are off.
FROM runtime AS gateway
COPY --from=gateway-venv /app/.venv /app/.venv
EXPOSE 8000
# The ingress controller keeps idle upstream connections for 60 s; a server that
# closed them sooner would race its reuse and turn requests into 502s.
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_GRACEFUL_SHUTDOWN_S=20 \
    GATEWAY_KEEP_ALIVE_TIMEOUT_S=75
CMD ["python", "-m", "tessera_gateway"]

FROM runtime AS catalog
COPY --from=catalog-venv /app/.venv /app/.venv
EXPOSE 8001
ENV CATALOG_HOST=0.0.0.0 \
    CATALOG_GRACEFUL_SHUTDOWN_S=20
CMD ["python", "-m", "tessera_catalog"]

FROM runtime AS inference
COPY --from=inference-venv /app/.venv /app/.venv
EXPOSE 8002
ENV INFERENCE_HOST=0.0.0.0 \
    INFERENCE_GRACEFUL_SHUTDOWN_S=20
CMD ["python", "-m", "tessera_inference"]
