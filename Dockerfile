# programview: the sync daemon in a container.
#
#   docker build -t programview .
#   docker run -d --name programview \
#     -v "$PWD/programview.toml:/config/programview.toml:ro" \
#     -v programview-data:/data \
#     -e JIRA_EMAIL -e JIRA_API_TOKEN \
#     programview
#
# The SQLite warehouse (the default `sqlite:///programview.db`) lands in the /data volume,
# the working directory. For PostgreSQL, set [warehouse] url or PROGRAMVIEW_WAREHOUSE_URL.
# One-off commands: `docker run --rm ... programview report` (or `... programview status`).
# See docs/operations.md.

# --- build the wheel ----------------------------------------------------------------------
FROM python:3.12-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build
COPY pyproject.toml README.md ./
COPY src ./src
COPY connectors ./connectors
COPY migrations ./migrations
RUN python -m build --wheel --outdir /dist

# --- runtime: the wheel and its dependencies, nothing else ---------------------------------
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROGRAMVIEW_CONFIG=/config/programview.toml \
    PROGRAMVIEW_SERVE=0.0.0.0:9108
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl \
    && rm /tmp/*.whl \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home programview \
    && mkdir -p /data /config \
    && chown programview:programview /data
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/programview-entrypoint
USER programview
WORKDIR /data
VOLUME ["/data"]
# /healthz and /metrics of `daemon --serve` ($PROGRAMVIEW_SERVE)
EXPOSE 9108
# 200 when the last run succeeded and the data is fresh ([sync] max_age), else 503. The slim
# image has no curl: the standard library asks (an HTTP error status raises, exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=2m --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4)"]
# `db upgrade`, then the daemon (arguments that start with - go to the daemon); any other
# command runs instead: `docker run --rm ... programview report`.
ENTRYPOINT ["programview-entrypoint"]
CMD []
