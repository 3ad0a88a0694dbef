#!/usr/bin/env bash
# Usage: submit_batch.sh FILE [BATCH_ID]   — send a JSONL batch to the running stack.
set -euo pipefail
source "$(dirname "$0")/_common.sh"
[ $# -ge 1 ] || { echo "usage: $0 FILE [BATCH_ID]" >&2; exit 2; }
if [ $# -ge 2 ]; then exec "$EVENTPIPE" submit "$1" --batch-id "$2"; fi
exec "$EVENTPIPE" submit "$1"
