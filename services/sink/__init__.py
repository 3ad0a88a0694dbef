"""Sink: the only writer of results and progress. Saves each document to every enabled
backend, then records it in the job's checkpoint, then commits."""
