-- Who is calling: the customer or account a token belongs to, in the protected API's
-- own terms, and a small JSON object the protected API receives on verification.
ALTER TABLE tokens ADD COLUMN external_id TEXT COLLATE "C";
ALTER TABLE tokens ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'; -- JSON object, <= 4 KB

-- The list filters by external id (exact match).
CREATE INDEX tokens_external_id ON tokens(kind, external_id);
