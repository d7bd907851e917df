package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrateLock is the key of the advisory lock that migrate holds: any
// 64-bit number no other program on the same database uses ("idlegrd" in
// ASCII).
const migrateLock int64 = 0x69646c65677264

// migrate applies the migrations that the database has not recorded in
// schema_migrations, in order, in one transaction that first takes the
// transaction-level advisory lock migrateLock. Nodes that start together
// queue on the lock: the first applies what is missing and commits, and
// each after it finds everything recorded and applies nothing. A failed
// migration rolls back with every other, and the lock goes with the
// transaction, so a node that dies mid-way leaves neither half a schema
// nor a lock behind.
func migrate(ctx context.Context, pool *pgxpool.Pool, migrations []string) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
		return err
	}
	var version int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program's %d", version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}
	for i, m := range migrations[version:] {
		n := version + i + 1
		if _, err := tx.Exec(ctx, m); err != nil {
			return fmt.Errorf("migration %d: %w", n, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, n); err != nil {
			return fmt.Errorf("migration %d: %w", n, err)
		}
	}
	return tx.Commit(ctx)
}

// migrations are applied in order, once each; append, never edit. Every
// name column is COLLATE "C": ORDER BY is bytewise, as in the SQLite
// store, whatever locale the database was created with, and the btree
// indexes serve it.
var migrations = []string{
	`
CREATE TABLE domains (
	name    text COLLATE "C" PRIMARY KEY,
	created bigint NOT NULL
);

INSERT INTO domains (name, created) VALUES ('default', (extract(epoch FROM now()) * 1000)::bigint);

-- The domain foreign keys do not cascade: RemoveDomain deletes a
-- domain's rows itself, and a table it forgot makes the delete of the
-- domain fail instead of leaving rows behind.
CREATE TABLE groups (
	domain text COLLATE "C" NOT NULL REFERENCES domains (name),
	name   text COLLATE "C" NOT NULL,
	PRIMARY KEY (domain, name)
);

CREATE TABLE group_permissions (
	domain     text COLLATE "C" NOT NULL,
	group_name text COLLATE "C" NOT NULL,
	permission text COLLATE "C" NOT NULL,
	PRIMARY KEY (domain, group_name, permission),
	FOREIGN KEY (domain, group_name) REFERENCES groups (domain, name) ON DELETE CASCADE
);

-- Ids come from the identity's sequence, which never hands one out
-- twice, even after a rollback or a delete: a token's user id names one
-- user, of one domain, for good. UserByID finds a user by id alone.
CREATE TABLE users (
	domain        text COLLATE "C" NOT NULL,
	name          text COLLATE "C" NOT NULL,
	id            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
	group_name    text COLLATE "C" NOT NULL,
	password_hash bytea NOT NULL,
	PRIMARY KEY (domain, name),
	FOREIGN KEY (domain, group_name) REFERENCES groups (domain, name)
);

-- One row a domain once its setting has been saved; none before.
CREATE TABLE settings (
	domain             text COLLATE "C" PRIMARY KEY REFERENCES domains (name),
	expiration_seconds bigint NOT NULL,
	updated_by         text NOT NULL,
	updated_at         bigint NOT NULL
);

-- Newest first is highest id first: SaveSettings takes the domain's
-- settings row before it draws an id, so one domain's ids are drawn in
-- commit order.
CREATE TABLE settings_changes (
	domain text COLLATE "C" NOT NULL REFERENCES domains (name),
	id     bigint GENERATED ALWAYS AS IDENTITY,
	at     bigint NOT NULL,
	by     text NOT NULL,
	old    bigint NOT NULL,
	new    bigint NOT NULL,
	PRIMARY KEY (domain, id)
);

-- No foreign keys: a session outlives its user, and its domain, until
-- the purge. Session(id) finds a session by id alone; ids are 144 random
-- bits and unique across domains.
CREATE TABLE sessions (
	domain         text COLLATE "C" NOT NULL,
	id             text COLLATE "C" NOT NULL,
	user_id        bigint NOT NULL,
	username       text COLLATE "C" NOT NULL,
	created        bigint NOT NULL,
	last_activity  bigint NOT NULL,
	revoked        boolean NOT NULL DEFAULT false,
	revoked_at     bigint,
	revoked_reason text NOT NULL DEFAULT '',
	PRIMARY KEY (domain, id),
	UNIQUE (id)
);

-- Live sessions only: ended ones pile up until the purge and cost these
-- nothing. LiveSessions reads them oldest first; UpdateUser, DeleteUser
-- and RevokeUserSessions end a user's, RemoveDomain a domain's.
CREATE INDEX sessions_live ON sessions (created, id) WHERE NOT revoked;
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE NOT revoked;
CREATE INDEX sessions_live_by_domain ON sessions (domain) WHERE NOT revoked;
-- PurgeSessions ranges over revoked_at.
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked;

-- The two logs: each session ended outside the idle clock, and each
-- domain added or removed, in seq order, which is commit order: seqs are
-- drawn from the log's row in log_heads, whose lock each appender holds
-- until it commits (appendLog). A plain sequence would not do: nextval
-- is not transactional, so a later seq could commit first, and a reader
-- past it would never see the earlier one.
CREATE TABLE log_heads (
	name text COLLATE "C" PRIMARY KEY,
	seq  bigint NOT NULL
);

INSERT INTO log_heads (name, seq) VALUES ('session_ends', 0), ('domain_changes', 0);

CREATE TABLE session_ends (
	seq        bigint PRIMARY KEY,
	session_id text COLLATE "C" NOT NULL,
	at         bigint NOT NULL,
	reason     text NOT NULL
);

CREATE TABLE domain_changes (
	seq     bigint PRIMARY KEY,
	domain  text COLLATE "C" NOT NULL,
	removed boolean NOT NULL,
	at      bigint NOT NULL
);

-- PurgeSessions ranges over at.
CREATE INDEX session_ends_at ON session_ends (at);
CREATE INDEX domain_changes_at ON domain_changes (at);
`,
	`
-- The signing keys every node signs and verifies tokens with (keys.go).
-- seed is an Ed25519 private key (RFC 8032's 32-byte seed): this table
-- holds a secret, and so does every backup and replica of it. kid is the
-- key's RFC 7638 thumbprint, computed here from the key, never taken from
-- a caller. A NULL retired_at marks the current key; the unique index
-- allows one.
CREATE TABLE signing_keys (
	kid        text COLLATE "C" PRIMARY KEY,
	seed       bytea NOT NULL CHECK (length(seed) = 32),
	created    bigint NOT NULL,
	retired_at bigint
);

CREATE UNIQUE INDEX signing_keys_current ON signing_keys ((true)) WHERE retired_at IS NULL;
`,
}
