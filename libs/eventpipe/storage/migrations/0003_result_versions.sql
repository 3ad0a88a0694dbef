-- Result versions: a row says which version of its batch's results it belongs to (1, then
-- one more for each `eventpipe reprocess`, a job of its own, so its rows never collide with
-- the earlier ones) and what made it (pipeline, schema, models by stage).
ALTER TABLE documents
    ADD COLUMN result_version integer NOT NULL DEFAULT 1,
    ADD COLUMN versions       jsonb   NOT NULL DEFAULT '{}';
CREATE INDEX documents_batch_version_idx ON documents (batch_id, doc_id, result_version);

-- What a reader gets by default: the newest version of every document of a batch.
CREATE VIEW latest_documents AS
SELECT DISTINCT ON (batch_id, doc_id) *
FROM documents
ORDER BY batch_id, doc_id, result_version DESC, saved_at DESC;
