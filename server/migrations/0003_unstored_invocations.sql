-- A large command stores its first invocations as rows at once and keeps the others
-- here, as JSON, until later transactions turn them into rows: `unstored_next` counts
-- those stored so far, and `unstored_json` is NULL once all are.

ALTER TABLE commands ADD COLUMN unstored_json TEXT;

ALTER TABLE commands ADD COLUMN unstored_next BIGINT NOT NULL DEFAULT 0;
