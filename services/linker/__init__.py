"""Linker: once every document of a job is processed or failed, runs its batch-level work
(event links, storylines, statistics), saves them to every backend, then marks the job
COMPLETED (or FAILED with the reason; `eventpipe link JOB` runs it again)."""
