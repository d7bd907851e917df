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

	// 4: domains. Each POS business has its own users, groups, setting,
	// change record and sessions, and everything there was goes to the
	// domain "default". Groups, permissions, users and the setting are
	// keyed by domain, so their tables are rebuilt: new tables first, each
	// referencing the new ones, then the old ones dropped, dependants
	// before what they reference (foreign keys are on, and a DROP deletes
	// its rows first), then the new ones renamed, which rewrites the
	// references to them. The domain foreign keys do not cascade:
	// RemoveDomain deletes a domain's rows itself, and a table it forgot
	// makes the delete of the domain fail instead of leaving rows behind.
	`
CREATE TABLE domains (
	name    TEXT PRIMARY KEY,
	created INTEGER NOT NULL
) STRICT;

INSERT INTO domains (name, created) VALUES ('default', CAST(strftime('%s', 'now') AS INTEGER) * 1000);

CREATE TABLE groups_v4 (
	domain TEXT NOT NULL REFERENCES domains (name),
	name   TEXT NOT NULL,
	PRIMARY KEY (domain, name)
) STRICT, WITHOUT ROWID;

INSERT INTO groups_v4 (domain, name) SELECT 'default', name FROM groups;

CREATE TABLE group_permissions_v4 (
	domain     TEXT NOT NULL,
	group_name TEXT NOT NULL,
	permission TEXT NOT NULL,
	PRIMARY KEY (domain, group_name, permission),
	FOREIGN KEY (domain, group_name) REFERENCES groups_v4 (domain, name) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

INSERT INTO group_permissions_v4 (domain, group_name, permission)
SELECT 'default', group_name, permission FROM group_permissions;

-- Ids stay unique across domains: a token's user id names one user.
CREATE TABLE users_v4 (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	domain        TEXT NOT NULL,
	name          TEXT NOT NULL,
	group_name    TEXT NOT NULL,
	password_hash BLOB NOT NULL,
	UNIQUE (domain, name),
	FOREIGN KEY (domain, group_name) REFERENCES groups_v4 (domain, name)
) STRICT;

INSERT INTO users_v4 (id, domain, name, group_name, password_hash)
SELECT id, 'default', name, group_name, password_hash FROM users;

-- The copy set the new table's sequence to the highest id left, but a
-- user deleted since migration 2 may have been newer, and no id may come
-- back: carry the old sequence over before dropping the table drops it.
DELETE FROM sqlite_sequence WHERE name = 'users_v4';
INSERT INTO sqlite_sequence (name, seq) VALUES ('users_v4', max(
	(SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'users'),
	(SELECT coalesce(max(id), 0) FROM users_v4)));

-- One row a domain once its setting has been saved; none before.
CREATE TABLE settings_v4 (
	domain             TEXT PRIMARY KEY REFERENCES domains (name),
	expiration_seconds INTEGER NOT NULL,
	updated_by         TEXT NOT NULL,
	updated_at         INTEGER NOT NULL
) STRICT;

INSERT INTO settings_v4 (domain, expiration_seconds, updated_by, updated_at)
SELECT 'default', expiration_seconds, updated_by, updated_at FROM settings;

-- Ids keep their order: one domain's changes, newest first, are its
-- highest ids first.
CREATE TABLE settings_changes_v4 (
	id     INTEGER PRIMARY KEY,
	domain TEXT NOT NULL REFERENCES domains (name),
	at     INTEGER NOT NULL,
	by     TEXT NOT NULL,
	old    INTEGER NOT NULL,
	new    INTEGER NOT NULL
) STRICT;

INSERT INTO settings_changes_v4 (id, domain, at, by, old, new)
SELECT id, 'default', at, by, old, new FROM settings_changes;

DROP TABLE users;
DROP TABLE group_permissions;
DROP TABLE groups;
DROP TABLE settings;
DROP TABLE settings_changes;

ALTER TABLE groups_v4 RENAME TO groups;
ALTER TABLE group_permissions_v4 RENAME TO group_permissions;
ALTER TABLE users_v4 RENAME TO users;
ALTER TABLE settings_v4 RENAME TO settings;
ALTER TABLE settings_changes_v4 RENAME TO settings_changes;

-- SettingsChanges reads one domain's, newest first.
CREATE INDEX settings_changes_by_domain ON settings_changes (domain, id);

-- Sessions are many and keep no key to anything (a session outlives its
-- user, and now its domain, until the purge), so the table gains a column
-- rather than being copied. The default is what every session before
-- this migration was in; every session since names its domain.
ALTER TABLE sessions ADD COLUMN domain TEXT NOT NULL DEFAULT 'default';

-- RemoveDomain ends a domain's live sessions without a scan.
CREATE INDEX sessions_live_by_domain ON sessions (domain) WHERE revoked = 0;

-- Each domain added or removed, in commit order, as session_ends logs
-- sessions: a running server reads it to learn what the CLI did.
-- AUTOINCREMENT so that a seq never comes back after a purge.
CREATE TABLE domain_changes (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	domain  TEXT NOT NULL,
	removed INTEGER NOT NULL,
	at      INTEGER NOT NULL
) STRICT;

-- PurgeSessions ranges over at.
CREATE INDEX domain_changes_at ON domain_changes (at);
`,
}
