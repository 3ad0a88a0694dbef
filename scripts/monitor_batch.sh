#!/usr/bin/env bash
# Usage: monitor_batch.sh [JOB_ID]   — eventpipe monitor (JOB_ID: a job or batch id; default: the last job).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
exec "$EVENTPIPE" monitor "$@"
