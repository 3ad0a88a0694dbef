-- The language-model response cache when PostgreSQL is configured: one row per valid answer,
-- keyed by the SHA-256 of the model's identity, the prompt and the output schema.
CREATE TABLE llm_response_cache (
    key        text        PRIMARY KEY,
    answer     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
