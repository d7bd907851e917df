package sqlite

// migrations are applied in order, once each; append, never edit. The
// file's PRAGMA user_version counts how many it has seen.
var migrations = []string{
	`
CREATE TABLE groups (
	name TEXT PRIMARY KEY
) STRICT;

CREATE TABLE group_permissions (
	group_name TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
	permission TEXT NOT NULL,
	PRIMARY KEY (group_name, permission)
) STRICT, WITHOUT ROWID;

CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	group_name    TEXT NOT NULL REFERENCES groups (name),
	password_hash BLOB NOT NULL
) STRICT;

-- One row (id = 1) once the setting has been saved; none before.
CREATE TABLE settings (
	id                 INTEGER PRIMARY KEY CHECK (id = 1),
	expiration_seconds INTEGER NOT NULL,
	updated_by         TEXT NOT NULL,
	updated_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE settings_changes (
	id  INTEGER PRIMARY KEY,
	at  INTEGER NOT NULL,
	by  TEXT NOT NULL,
	old INTEGER NOT NULL,
	new INTEGER NOT NULL
) STRICT;

-- No foreign key to users: a session outlives its user's deletion until the
-- service revokes it, and deleting a user must not fail because of one.
CREATE TABLE sessions (
	id             TEXT PRIMARY KEY,
	user_id        INTEGER NOT NULL,
	username       TEXT NOT NULL,
	created        INTEGER NOT NULL,
	last_activity  INTEGER NOT NULL,
	revoked        INTEGER NOT NULL DEFAULT 0,
	revoked_at     INTEGER,
	revoked_reason TEXT NOT NULL DEFAULT ''
) STRICT;

-- LiveSessions reads revoked = 0; PurgeSessions ranges over revoked_at.
CREATE INDEX sessions_revoked ON sessions (revoked, revoked_at);
`,
}
