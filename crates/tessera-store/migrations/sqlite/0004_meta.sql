-- Facts about the database itself, one row per key:
--   pepper_fingerprint      hex HMAC-SHA-256 of a fixed label under the pepper the
--                           database was first used with (never the pepper); a process
--                           whose pepper gives another fingerprint refuses to act.
--   changes_pruned_through  the highest change-feed sequence deleted by pruning; a
--                           node whose last applied change is below it has missed
--                           changes and reloads its verify index.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
