#!/usr/bin/env bash
# Usage: checkpoint_status.sh [JOB_ID]   — eventpipe status (JOB_ID: a job or batch id; default: the last job).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
exec "$EVENTPIPE" status "$@"
