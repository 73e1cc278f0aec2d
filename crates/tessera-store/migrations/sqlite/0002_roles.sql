-- Admin roles. Users name their role; the built-in roles are seeded here. The
-- super-admin role's stored permission list is ignored: it always holds every
-- permission, including any added later.

CREATE TABLE roles (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL, -- JSON array of admin permissions
    builtin     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

INSERT INTO roles (name, description, permissions, builtin, created_at, updated_at) VALUES
    ('super-admin', 'Every permission. Cannot be edited.', '[]', 1, 0, 0),
    ('token-manager', 'Manages API tokens and reads the audit log.',
     '["tokens.read","tokens.create","tokens.update","tokens.regenerate","tokens.delete","audit.read"]', 1, 0, 0),
    ('viewer', 'Reads API tokens.', '["tokens.read"]', 1, 0, 0);

CREATE INDEX users_role ON users(role);
CREATE INDEX audit_actor ON audit(actor, id);
CREATE INDEX audit_target ON audit(target, id);
CREATE INDEX audit_action ON audit(action, id);
