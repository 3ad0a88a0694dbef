"""The operations console: an HTTP API under /api/v1 (bearer tokens, problem+json errors,
OpenAPI at /api/v1/openapi.json) and a web page at / for jobs, failures, statistics and
storylines. It reads the checkpoint files of the data directory and sends control commands
through the same library calls as the CLI (`eventpipe.jobs`)."""
