#!/bin/sh
# programview container entrypoint (see Dockerfile and docs/operations.md, "Docker").
#
# No arguments, or only options: migrate the warehouse, then run the daemon with them
#   (`programview db upgrade` is a no-op when the schema is current, and on PostgreSQL it
#   takes an advisory lock, so replicas starting together migrate once, one after another).
#   PROGRAMVIEW_SKIP_UPGRADE=1 skips the migration (when a separate job runs it).
# A programview command (`report`, `status`, `sync --source jira`): run it.
# Anything else on PATH (`sh`, `programview ...`): run it as is.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    if [ "${PROGRAMVIEW_SKIP_UPGRADE:-0}" != "1" ]; then
        programview db upgrade
    fi
    exec programview daemon "$@"
fi

if command -v "$1" >/dev/null 2>&1; then
    exec "$@"
fi
exec programview "$@"
