-- Tessera's initial schema (SQLite). Times are Unix milliseconds (UTC); ids are UUID
-- text; token secrets are never stored, only their HMAC digest and a display hint.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    active        INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    digest     BLOB PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE projects (
    slug       TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE resources (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    actions     TEXT NOT NULL, -- JSON: [{"name": …, "kind": "read" | "write"}]
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE tokens (
    id                   TEXT PRIMARY KEY NOT NULL,
    kind                 TEXT NOT NULL,
    name                 TEXT NOT NULL,
    name_key             TEXT NOT NULL,
    description          TEXT NOT NULL,
    token_type           TEXT NOT NULL,
    permissions          TEXT NOT NULL, -- JSON array of "resource.action"
    project              TEXT REFERENCES projects(slug) ON DELETE RESTRICT,
    owner_id             TEXT REFERENCES users(id) ON DELETE CASCADE,
    status               TEXT NOT NULL,
    lifespan             TEXT NOT NULL,
    expires_at           INTEGER,
    api_version          TEXT NOT NULL,
    hint                 TEXT NOT NULL,
    digest               BLOB NOT NULL UNIQUE,
    grace_digest         BLOB,
    grace_until          INTEGER,
    created_at           INTEGER NOT NULL,
    created_by           TEXT NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_used_at         INTEGER,
    rate_limit_requests  INTEGER,
    rate_limit_seconds   INTEGER,
    -- Bumped by every edit; an edit names the revision it read (optimistic locking).
    revision             INTEGER NOT NULL DEFAULT 0
);
-- API token names are unique, case-insensitively; personal token names are free.
CREATE UNIQUE INDEX tokens_api_name ON tokens(name_key) WHERE kind = 'api';
CREATE INDEX tokens_created ON tokens(kind, created_at, id);
CREATE INDEX tokens_owner ON tokens(owner_id);
CREATE INDEX tokens_project ON tokens(project);

CREATE TABLE usage_daily (
    token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    day      TEXT NOT NULL, -- YYYY-MM-DD, UTC
    allowed  INTEGER NOT NULL,
    denied   INTEGER NOT NULL,
    PRIMARY KEY (token_id, day)
);

CREATE TABLE audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    target         TEXT NOT NULL,
    client_address TEXT,
    changes        TEXT NOT NULL -- JSON object: field -> {"from", "to"}
);
CREATE INDEX audit_at ON audit(at);

-- The change feed: every write adds a row in its own transaction; nodes follow it.
CREATE TABLE changes (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    key      TEXT NOT NULL,
    at       INTEGER NOT NULL
);
