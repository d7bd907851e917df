package sqlite

import (
	"context"
	"database/sql"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// AddDomain creates an empty domain (ECONFLICT when it exists, EINVALID
// naming field "domain" for a bad name) and logs it in the domain log, in
// one transaction: a running server that reads the entry finds the domain.
func (db *DB) AddDomain(ctx context.Context, name string, at time.Time) error {
	if err := pos.ValidateDomain(name); err != nil {
		return err
	}
	return db.write(ctx, "add domain", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO domains (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
			name, millis(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return pos.Errorf(pos.ECONFLICT, "domain %q already exists", name)
		}
		return logDomainChange(ctx, tx, name, false, at)
	})
}

// Domains lists every domain by name.
func (db *DB) Domains(ctx context.Context) ([]pos.Domain, error) {
	return queryAll(ctx, db.r, "domains", func(rows *sql.Rows) (pos.Domain, error) {
		var d pos.Domain
		var created int64
		err := rows.Scan(&d.Name, &created)
		d.Created = fromMillis(created)
		return d, err
	}, `SELECT name, created FROM domains ORDER BY name`)
}

// RemoveDomain deletes a domain and everything in it in one transaction
// (ENOTFOUND): refused with ECONFLICT while it has users unless force, so
// that a typo on the command line cannot empty a shop. Its live sessions
// end (reason "revoked", in the session end log) and their ids are
// returned; their rows stay until the purge, as a deleted user's do.
func (db *DB) RemoveDomain(ctx context.Context, name string, force bool, at time.Time) (ended []string, err error) {
	err = db.write(ctx, "remove domain", func(tx *sql.Tx) error {
		if err := domainExists(ctx, tx, name); err != nil {
			return err
		}
		var users int
		if err := tx.QueryRowContext(ctx,
			`SELECT count(*) FROM users WHERE domain = ?`, name).Scan(&users); err != nil {
			return err
		}
		if users > 0 && !force {
			noun := "users"
			if users == 1 {
				noun = "user"
			}
			return pos.Errorf(pos.ECONFLICT, "domain %q has %d %s; remove them first or use -force", name, users, noun)
		}
		ended, err = endSessions(ctx, tx, at, protocol.ReasonRevoked, `domain = ?`, name)
		if err != nil {
			return err
		}
		// Dependants before what they reference; group_permissions go
		// with their groups (ON DELETE CASCADE).
		for _, table := range []string{"users", "groups", "settings", "settings_changes"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE domain = ?`, name); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM domains WHERE name = ?`, name); err != nil {
			return err
		}
		return logDomainChange(ctx, tx, name, true, at)
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// logDomainChange appends an entry to the domain log.
func logDomainChange(ctx context.Context, tx *sql.Tx, name string, removed bool, at time.Time) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO domain_changes (domain, removed, at) VALUES (?, ?, ?)`, name, removed, millis(at))
	return err
}

// DomainChanges returns the domain log's entries after seq, oldest first,
// at most limit; none when limit is not positive. As with the session end
// log, seqs only grow and commit in order, so none is missed.
func (db *DB) DomainChanges(ctx context.Context, after int64, limit int) ([]pos.DomainChange, error) {
	if limit <= 0 {
		return nil, nil // SQLite reads LIMIT -1 as "no limit"
	}
	return queryAll(ctx, db.r, "domain changes", func(rows *sql.Rows) (pos.DomainChange, error) {
		var c pos.DomainChange
		err := rows.Scan(&c.Seq, &c.Domain, &c.Removed)
		return c, err
	}, `SELECT seq, domain, removed FROM domain_changes
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
}

// LastDomainChange is the domain log's newest seq, 0 when it is empty.
// Read it before Domains: a change committed between the two is then seen
// twice rather than missed.
func (db *DB) LastDomainChange(ctx context.Context) (int64, error) {
	var seq int64
	err := db.r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM domain_changes`).Scan(&seq)
	return seq, wrap("last domain change", err)
}

// rowQuerier is what *sql.DB and *sql.Tx share for one-row reads.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// domainExists is nil for an existing domain, ENOTFOUND otherwise.
func domainExists(ctx context.Context, q rowQuerier, name string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM domains WHERE name = ?`, name).Scan(&one)
	if err == sql.ErrNoRows {
		return pos.Errorf(pos.ENOTFOUND, "domain %q not found", name)
	}
	return err
}
