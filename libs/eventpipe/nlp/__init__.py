"""Language processing behind the stages: the spaCy pipeline resolver, entity and sentence
extraction, dependency triplets, the events backends and a synthetic news corpus."""
