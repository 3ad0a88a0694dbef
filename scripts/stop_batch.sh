#!/usr/bin/env bash
# Usage: stop_batch.sh [JOB_ID]   — eventpipe stop (JOB_ID: a job or batch id; default: the last job).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
exec "$EVENTPIPE" stop "$@"
