-- The initial schema of the PostgreSQL backend.
-- Per-document results: a document row and its child rows (entities, triplets, events),
-- keyed by (job_id, doc_id); the sink rewrites them all in one transaction per document.

CREATE TABLE documents (
    job_id             uuid        NOT NULL,
    doc_id             text        NOT NULL,
    batch_id           text        NOT NULL,
    text               text        NOT NULL,
    meta               jsonb       NOT NULL DEFAULT '{}',
    timings_ms         jsonb       NOT NULL DEFAULT '{}',
    saved_at           timestamptz NOT NULL,
    -- PostgreSQL text cannot hold NUL; the backend strips them and counts them here.
    nul_bytes_stripped integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, doc_id)
);
CREATE INDEX documents_batch_id_idx ON documents (batch_id);

CREATE TABLE entities (
    job_id     uuid    NOT NULL,
    doc_id     text    NOT NULL,
    ordinal    integer NOT NULL,
    text       text    NOT NULL,
    label      text    NOT NULL,
    start_char integer NOT NULL,
    end_char   integer NOT NULL,
    PRIMARY KEY (job_id, doc_id, ordinal),
    FOREIGN KEY (job_id, doc_id) REFERENCES documents (job_id, doc_id) ON DELETE CASCADE
);
CREATE INDEX entities_label_idx ON entities (label);

CREATE TABLE triplets (
    job_id         uuid    NOT NULL,
    doc_id         text    NOT NULL,
    ordinal        integer NOT NULL,
    subject        text    NOT NULL,
    action         text    NOT NULL,
    object         text,
    negated        boolean NOT NULL DEFAULT false,
    passive        boolean NOT NULL DEFAULT false,
    agent          text,
    prep_modifiers jsonb   NOT NULL DEFAULT '[]',
    sentence       integer NOT NULL DEFAULT 0,
    start_char     integer NOT NULL DEFAULT 0,
    end_char       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, doc_id, ordinal),
    FOREIGN KEY (job_id, doc_id) REFERENCES documents (job_id, doc_id) ON DELETE CASCADE
);

CREATE TABLE events (
    job_id       uuid    NOT NULL,
    doc_id       text    NOT NULL,
    ordinal      integer NOT NULL,
    trigger      text    NOT NULL,
    type         text    NOT NULL,
    participants jsonb   NOT NULL DEFAULT '[]',
    location     text,
    -- Free text as the extractor found it ("on Friday"), not a timestamp.
    time         text,
    sentence     integer NOT NULL DEFAULT 0,
    source       text    NOT NULL,
    PRIMARY KEY (job_id, doc_id, ordinal),
    FOREIGN KEY (job_id, doc_id) REFERENCES documents (job_id, doc_id) ON DELETE CASCADE
);
CREATE INDEX events_type_idx ON events (type);

-- A failure is recorded even when the document also has results: the checkpoint decides.
CREATE TABLE failed_documents (
    job_id    uuid        NOT NULL,
    doc_id    text        NOT NULL,
    batch_id  text        NOT NULL,
    stage     text        NOT NULL,
    error     text        NOT NULL,
    failed_at timestamptz NOT NULL,
    PRIMARY KEY (job_id, doc_id)
);
CREATE INDEX failed_documents_batch_id_idx ON failed_documents (batch_id);

-- Batch-level results, filled by a later step over a whole job.

CREATE TABLE event_links (
    job_id        uuid             NOT NULL,
    source_doc_id text             NOT NULL,
    source_event  integer          NOT NULL,
    target_doc_id text             NOT NULL,
    target_event  integer          NOT NULL,
    score         double precision NOT NULL,
    evidence      jsonb            NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, source_doc_id, source_event, target_doc_id, target_event)
);

CREATE TABLE storylines (
    job_id       uuid  NOT NULL,
    storyline_id text  NOT NULL,
    title        text,
    doc_ids      jsonb NOT NULL DEFAULT '[]',
    events       jsonb NOT NULL DEFAULT '[]',
    -- Event times are free text, so a storyline's span is too.
    start_time   text,
    end_time     text,
    PRIMARY KEY (job_id, storyline_id)
);

CREATE TABLE batch_statistics (
    job_id      uuid        PRIMARY KEY,
    batch_id    text        NOT NULL,
    stats       jsonb       NOT NULL DEFAULT '{}',
    computed_at timestamptz NOT NULL
);
CREATE INDEX batch_statistics_batch_id_idx ON batch_statistics (batch_id);
