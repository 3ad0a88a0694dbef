"""Kafka plumbing: topic names and creation, client settings, the embedded broker. Nothing
here knows of jobs, control or checkpoints."""
