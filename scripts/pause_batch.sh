#!/usr/bin/env bash
# Usage: pause_batch.sh [JOB_ID]   — eventpipe pause (JOB_ID: a job or batch id; default: the last job).
set -euo pipefail
source "$(dirname "$0")/_common.sh"
exec "$EVENTPIPE" pause "$@"
