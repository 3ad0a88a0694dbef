"""Language processing behind the stages: the spaCy pipeline resolver, entity and sentence
extraction, dependency triplets and the events backends (found by name, see `events`)."""
