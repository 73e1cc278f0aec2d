-- Search and filters over many tokens (a million and more).
--
-- Name substring search: an FTS5 index with the trigram tokenizer over `name_key`
-- (already NFKC-lowercased, so the index folds nothing: case_sensitive 1). A query
-- of three characters or more finds its candidates here; the list still applies its
-- `LIKE` to them, so the answer is exactly the substring match it always was. One
-- or two characters match no trigram, and those queries scan as before.
--
-- The index borrows its text from `tokens` (external content, keyed by the table's
-- rowid), kept in step by the triggers below. SQLite renumbers a rowid only in a
-- VACUUM of a table without an INTEGER PRIMARY KEY; after a manual VACUUM, run
-- INSERT INTO token_names(token_names) VALUES ('rebuild').
CREATE VIRTUAL TABLE token_names USING fts5(
    name_key,
    content = 'tokens',
    content_rowid = 'rowid',
    tokenize = 'trigram case_sensitive 1'
);
INSERT INTO token_names (token_names) VALUES ('rebuild');

CREATE TRIGGER tokens_names_insert AFTER INSERT ON tokens BEGIN
    INSERT INTO token_names (rowid, name_key) VALUES (new.rowid, new.name_key);
END;
CREATE TRIGGER tokens_names_delete AFTER DELETE ON tokens BEGIN
    INSERT INTO token_names (token_names, rowid, name_key)
        VALUES ('delete', old.rowid, old.name_key);
END;
CREATE TRIGGER tokens_names_update AFTER UPDATE OF name_key ON tokens BEGIN
    INSERT INTO token_names (token_names, rowid, name_key)
        VALUES ('delete', old.rowid, old.name_key);
    INSERT INTO token_names (rowid, name_key) VALUES (new.rowid, new.name_key);
END;

-- The status and type filters, and their counts, from an index rather than the rows.
CREATE INDEX tokens_status ON tokens(kind, status, expires_at);
CREATE INDEX tokens_expires ON tokens(kind, expires_at);
CREATE INDEX tokens_type ON tokens(kind, token_type, created_at);
