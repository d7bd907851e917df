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

	// 2: user ids are never reused. A plain INTEGER PRIMARY KEY hands the
	// highest id out again once its user is deleted, and the next user
	// created inherited every session still naming it. SQLite cannot add
	// AUTOINCREMENT to a table, so the table is rebuilt, each row keeping
	// its id. Nothing references users, so dropping it breaks no key.
	`
CREATE TABLE users_autoincrement (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	name          TEXT NOT NULL UNIQUE,
	group_name    TEXT NOT NULL REFERENCES groups (name),
	password_hash BLOB NOT NULL
) STRICT;

INSERT INTO users_autoincrement (id, name, group_name, password_hash)
SELECT id, name, group_name, password_hash FROM users;

DROP TABLE users;
ALTER TABLE users_autoincrement RENAME TO users;

-- AUTOINCREMENT counts from sqlite_sequence, which the copy set to
-- max(users.id). A user deleted before this upgrade may have been the
-- newest and still be named by sessions: start above those ids too.
DELETE FROM sqlite_sequence WHERE name = 'users';
INSERT INTO sqlite_sequence (name, seq) VALUES ('users', max(
	(SELECT coalesce(max(id), 0) FROM users),
	(SELECT coalesce(max(user_id), 0) FROM sessions)));
`,

	// 3: the session end log, and ending a user's sessions without a scan.
	`
-- Each session ended outside the idle clock (a sign-out, a revocation, a
-- user changed or deleted), in commit order: a running server reads it
-- to learn of sessions another process (the CLI) ended. AUTOINCREMENT so
-- that a seq never comes back after a purge: a reader positioned past
-- it would miss the new entry.
CREATE TABLE session_ends (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	session_id TEXT NOT NULL,
	at         INTEGER NOT NULL,
	reason     TEXT NOT NULL
) STRICT;

-- PurgeSessions ranges over at.
CREATE INDEX session_ends_at ON session_ends (at);

-- UpdateUser, DeleteUser and RevokeUserSessions read a user's live
-- sessions. Partial: ended rows, which pile up until the purge, are not
-- in it, so they cost it nothing.
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked = 0;
`,
}
