"""Facts more than one module must agree on, spelled once: the key prefix of the markers
that readers use to find the end of a compacted topic, the timestamp format of every record
and checkpoint, and what a job id and a batch id look like."""

from __future__ import annotations

import re

# Keys `marker/<token>` on the checkpoint and control topics: written by a reader to learn
# where "now" is (see `eventpipe.kafka.catch_up`), skipped by every fold.
MARKER_PREFIX = b"marker/"

# ISO-8601 UTC with a trailing Z, second precision, as the checkpoint format shows.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# Id patterns are matched whole, with `fullmatch`: `$` would let a trailing newline through.
# Job ids are UUIDs (derived from the batch id); anything else never becomes a path.
JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Batch ids name files: letters, digits, '.', '_', '-', starting with a letter or digit.
BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
