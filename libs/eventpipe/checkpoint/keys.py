"""Record keys on the checkpoint topic. One key per document makes recording O(1) and lets a
redelivered document overwrite its own record."""

from __future__ import annotations

import zlib

from eventpipe.kafka.markers import marker_key as marker_key


def job_key(job_id: str) -> bytes:
    return f"job/{job_id}".encode()


def doc_key(job_id: str, doc_id: str) -> bytes:
    return f"doc/{job_id}/{doc_id}".encode()


def status_key(job_id: str) -> bytes:
    return f"status/{job_id}".encode()


def partition_for(job_id: str, partitions: int) -> int:
    """All records of a job go to one partition, so they keep their order."""
    return zlib.crc32(job_id.encode()) % partitions
