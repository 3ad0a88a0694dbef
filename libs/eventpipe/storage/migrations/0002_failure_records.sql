-- Failure records keep what is needed to redo them: the failing stage's input message
-- (payload), the class of the failure, attempts, first and last time, replays, quarantine;
-- and every result row says which message schema version wrote it.
ALTER TABLE failed_documents
    ADD COLUMN schema_version  integer     NOT NULL DEFAULT 1,
    ADD COLUMN failure_class   text        NOT NULL DEFAULT 'permanent'
        CHECK (failure_class IN ('transient', 'permanent')),
    ADD COLUMN attempts        integer     NOT NULL DEFAULT 1,
    ADD COLUMN first_failed_at timestamptz,
    ADD COLUMN replays         integer     NOT NULL DEFAULT 0,
    ADD COLUMN quarantined     boolean     NOT NULL DEFAULT false,
    ADD COLUMN payload         jsonb;
CREATE INDEX failed_documents_stage_idx ON failed_documents (job_id, stage);

ALTER TABLE documents ADD COLUMN schema_version integer NOT NULL DEFAULT 1;
