"""Ingest: reads a submitted JSONL file, validates every line, registers the job, skips the
documents already processed or failed, and sends the rest to the documents topic."""
