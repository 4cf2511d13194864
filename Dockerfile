# failover in a container: `docker build -t failover .` (README, "Container").
#
# Two stages. The builder turns the project and its dependencies into wheels and installs them
# into a virtualenv at /opt/failover; the final stage copies only that venv, so no compiler,
# pip cache or source tree ships. The venv's python is a symlink to the base image's
# interpreter: both stages must use the same base image, tag for tag.

FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY failover ./failover
RUN python -m venv /opt/failover \
 && /opt/failover/bin/pip wheel --no-cache-dir --wheel-dir /wheels ".[fast,hetzner,cloudflare]" \
 && /opt/failover/bin/pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl

FROM python:3.11-slim-bookworm
# VERSION follows pyproject.toml (tests/deploy/test_packaging.py); SOURCE is the repository.
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/failover-dns/failover
LABEL org.opencontainers.image.title="failover" \
      org.opencontainers.image.description="Multi-provider DNS failover daemon with an explainable state machine" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}/tree/main/docs"

# A fixed, unprivileged UID/GID (10001) so volume ownership is predictable across rebuilds and
# hosts (chown a bind-mounted state dir to 10001:10001). /run/failover holds the admin socket.
RUN groupadd --system --gid 10001 failover \
 && useradd --system --no-log-init --uid 10001 --gid failover --no-create-home \
      --home-dir /var/lib/failover --shell /usr/sbin/nologin failover \
 && install -d -o failover -g failover -m 0750 /var/lib/failover /run/failover \
 && install -d -m 0755 /etc/failover

COPY --from=builder /opt/failover /opt/failover
ENV PATH="/opt/failover/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
WORKDIR /var/lib/failover
# state_dir of the config: state.json and journal.jsonl must outlive the container.
VOLUME ["/var/lib/failover"]
# metrics.listen: /metrics, /healthz, /readyz (the config must listen on 0.0.0.0:9180).
EXPOSE 9180
# failover runs as PID 1 and handles SIGTERM itself: it finishes the cycle in flight, persists
# its state and exits 0. It starts no child processes, so no init is needed to reap them.
STOPSIGNAL SIGTERM
# `failover healthcheck` GETs http://127.0.0.1:9180/healthz (the decision loop is cycling) and
# exits 0 or 1; set FAILOVER_HEALTHCHECK_URL when metrics.listen uses another port. The
# timeout leaves room for the interpreter's start on a CPU-limited container.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["failover", "healthcheck"]

ENTRYPOINT ["failover"]
CMD ["run", "-c", "/etc/failover/failover.yaml"]
