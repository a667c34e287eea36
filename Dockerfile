# One image for the operator and every runtime role: `wacluster operator|master|coreapp|webapp|sandbox|dbupgrade`.
# The base is a build argument so air-gapped builds can use a locally made Python base image.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/wacluster && /opt/wacluster/bin/pip install --upgrade pip
# Dependencies in a layer of their own, keyed on pyproject.toml only: a source change rebuilds
# the last layer in seconds instead of downloading every dependency again.
COPY pyproject.toml README.md ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/wacluster/bin/pip install -r /tmp/requirements.txt
COPY operator ./operator
RUN /opt/wacluster/bin/pip install --no-deps . \
 && /opt/wacluster/bin/wacluster --help >/dev/null

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="wacluster" \
      org.opencontainers.image.description="WhatsApp Business API client in HA and multiconnect mode on Kubernetes: operator and runtime roles" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/wacluster/wacluster"
# Only the installed virtualenv is carried over: no sources, no build tools.
COPY --from=build /opt/wacluster /opt/wacluster
ENV PATH=/opt/wacluster/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# A numeric non-root user, so runAsNonRoot can verify it; writes go to mounted volumes and /tmp only.
USER 10001:10001
WORKDIR /tmp
EXPOSE 9090 6250 6200 9100 8080
ENTRYPOINT ["wacluster"]
CMD ["--help"]
