"""The spaCy pipeline every NLP test shares (loaded once per session)."""

from __future__ import annotations

import pytest
from spacy.language import Language

from eventpipe.nlp.model import load_pipeline


@pytest.fixture(scope="session")
def nlp() -> Language:
    return load_pipeline()
