"""NER stage: named entities with spaCy's `ner` component alone."""
