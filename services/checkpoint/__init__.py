"""Checkpoint materializer: folds the checkpoint and control topics into job states, writes
`checkpoints/{job_id}.json` atomically when a job changed. Run exactly one per data
directory. (The linker marks a job COMPLETED once its batch-level work is done.)"""
