-- A large command stores its first invocations as rows at once and keeps the others
-- here, as JSON, until a second transaction turns them into rows (NULL after that).

ALTER TABLE commands ADD COLUMN unstored_json TEXT;
