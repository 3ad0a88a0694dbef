"""Checkpoint state: per-document records on a compacted topic, folded into job states and
materialized as `checkpoints/{job_id}.json`."""
