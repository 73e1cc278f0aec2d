-- Admin roles (PostgreSQL; mirrors migrations/sqlite/0002_roles.sql). Users name their
-- role; the built-in roles are seeded here. The super-admin role's stored permission
-- list is ignored: it always holds every permission, including any added later.

CREATE TABLE roles (
    name        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL, -- JSON array of admin permissions
    builtin     BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

INSERT INTO roles (name, description, permissions, builtin, created_at, updated_at) VALUES
    ('super-admin', 'Every permission. Cannot be edited.', '[]', TRUE, 0, 0),
    ('token-manager', 'Manages API tokens and reads the audit log.',
     '["tokens.read","tokens.create","tokens.update","tokens.regenerate","tokens.delete","audit.read"]', TRUE, 0, 0),
    ('viewer', 'Reads API tokens.', '["tokens.read"]', TRUE, 0, 0);

CREATE INDEX users_role ON users(role);
CREATE INDEX audit_actor ON audit(actor, id);
CREATE INDEX audit_target ON audit(target, id);
CREATE INDEX audit_action ON audit(action, id);
