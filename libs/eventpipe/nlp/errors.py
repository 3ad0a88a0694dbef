"""Errors raised by the language-processing layer."""

from __future__ import annotations


class NLPError(Exception):
    """Base class of the errors of `eventpipe.nlp`."""


class ModelNotFoundError(NLPError):
    """No candidate spaCy pipeline could be loaded."""
