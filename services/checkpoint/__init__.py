"""Checkpoint materializer: folds the checkpoint and control topics into job states, writes
`checkpoints/{job_id}.json` atomically when a job changed, and marks a job COMPLETED when
every document is processed or failed. Run exactly one per data directory."""
