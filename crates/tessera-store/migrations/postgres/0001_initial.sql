-- Tessera's initial schema (PostgreSQL). The same tables, columns and indexes as
-- migrations/sqlite/0001_initial.sql, under the same version number. Times are Unix
-- milliseconds (UTC); ids are UUID text; token secrets are never stored, only their
-- HMAC digest and a display hint.
--
-- Key columns use COLLATE "C" so that ordering and range comparisons (keyset cursors,
-- name sort, days) are byte order, as in SQLite, whatever the database's locale.

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL,
    email_key     TEXT COLLATE "C" NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    active        BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    digest     BYTEA PRIMARY KEY NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE projects (
    slug       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE resources (
    name        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    actions     TEXT NOT NULL, -- JSON: [{"name": …, "kind": "read" | "write"}]
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    id                   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    kind                 TEXT NOT NULL,
    name                 TEXT NOT NULL,
    name_key             TEXT COLLATE "C" NOT NULL,
    description          TEXT NOT NULL,
    token_type           TEXT NOT NULL,
    permissions          TEXT NOT NULL, -- JSON array of "resource.action"
    project              TEXT COLLATE "C" REFERENCES projects(slug) ON DELETE RESTRICT,
    owner_id             TEXT COLLATE "C" REFERENCES users(id) ON DELETE CASCADE,
    status               TEXT NOT NULL,
    lifespan             TEXT NOT NULL,
    expires_at           BIGINT,
    api_version          TEXT NOT NULL,
    hint                 TEXT NOT NULL,
    digest               BYTEA NOT NULL UNIQUE,
    grace_digest         BYTEA,
    grace_until          BIGINT,
    created_at           BIGINT NOT NULL,
    created_by           TEXT NOT NULL,
    updated_at           BIGINT NOT NULL,
    last_used_at         BIGINT,
    rate_limit_requests  BIGINT,
    rate_limit_seconds   BIGINT,
    -- Bumped by every edit; an edit names the revision it read (optimistic locking).
    revision             BIGINT NOT NULL DEFAULT 0
);
-- API token names are unique, case-insensitively; personal token names are free.
CREATE UNIQUE INDEX tokens_api_name ON tokens(name_key) WHERE kind = 'api';
CREATE INDEX tokens_created ON tokens(kind, created_at, id);
CREATE INDEX tokens_owner ON tokens(owner_id);
CREATE INDEX tokens_project ON tokens(project);

CREATE TABLE usage_daily (
    token_id TEXT COLLATE "C" NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    day      TEXT COLLATE "C" NOT NULL, -- YYYY-MM-DD, UTC
    allowed  BIGINT NOT NULL,
    denied   BIGINT NOT NULL,
    PRIMARY KEY (token_id, day)
);

CREATE TABLE audit (
    id             BIGSERIAL PRIMARY KEY,
    at             BIGINT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    target         TEXT NOT NULL,
    client_address TEXT,
    changes        TEXT NOT NULL -- JSON object: field -> {"from", "to"}
);
CREATE INDEX audit_at ON audit(at);

-- The change feed: every write adds a row in its own transaction; nodes follow it.
-- Sequence numbers are handed out under a transaction-level advisory lock held until
-- commit (see src/postgres/mod.rs), so rows become visible in sequence order and a
-- follower reading `sequence > last_seen` never skips one. The sequence must keep
-- CACHE 1 (the default): cached ranges per session would break that order.
CREATE TABLE changes (
    sequence BIGSERIAL PRIMARY KEY,
    kind     TEXT NOT NULL,
    key      TEXT NOT NULL,
    at       BIGINT NOT NULL
);
