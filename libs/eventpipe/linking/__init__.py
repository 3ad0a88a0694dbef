"""Batch-level work, once every document of a job is processed or failed: event links across
documents, storylines and batch statistics. Pure: no Kafka, no storage."""
