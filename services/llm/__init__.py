"""Events stage ("LLM" stage): events from entities and triplets, through a pluggable backend."""
