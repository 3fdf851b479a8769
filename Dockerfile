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
# One-off commands: `docker run --rm ... programview programview report`.
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
    PROGRAMVIEW_CONFIG=/config/programview.toml
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl \
    && rm /tmp/*.whl \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home programview \
    && mkdir -p /data /config \
    && chown programview:programview /data
USER programview
WORKDIR /data
VOLUME ["/data"]
# --upgrade migrates the warehouse before the first run (a no-op when it is current). With
# several daemons on one PostgreSQL, run `programview db upgrade` once and drop the flag.
CMD ["programview", "daemon", "--upgrade"]
