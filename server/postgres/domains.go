package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// Row lock strengths lockDomain takes.
const (
	keyShare  = "KEY SHARE" // writes into the domain: they share it
	forUpdate = "UPDATE"    // RemoveDomain: alone
)

// AddDomain creates an empty domain (ECONFLICT when it exists, EINVALID
// naming field "domain" for a bad name) and logs it in the domain log, in
// one transaction: a server that reads the entry finds the domain.
func (db *DB) AddDomain(ctx context.Context, name string, at time.Time) error {
	if err := pos.ValidateDomain(name); err != nil {
		return err
	}
	return db.write(ctx, "add domain", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`INSERT INTO domains (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
			name, millis(at))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pos.Errorf(pos.ECONFLICT, "domain %q already exists", name)
		}
		return logDomainChange(ctx, tx, name, false, at)
	})
}

// Domains lists every domain by name.
func (db *DB) Domains(ctx context.Context) ([]pos.Domain, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rows, _ := db.pool.Query(ctx, `SELECT name, created FROM domains ORDER BY name`)
	domains, err := collect(rows, func(row pgx.CollectableRow) (pos.Domain, error) {
		var d pos.Domain
		var created int64
		err := row.Scan(&d.Name, &created)
		d.Created = fromMillis(created)
		return d, err
	})
	return domains, wrap("domains", err)
}

// RemoveDomain deletes a domain and everything in it in one transaction
// (ENOTFOUND): refused with ECONFLICT while it has users unless force.
// Its live sessions end (reason "revoked", in the session end log) and
// their ids are returned; their rows stay until the purge. The domain's
// row is locked first, FOR UPDATE: writes into the domain that are under
// way finish before, and those that come after find no domain.
func (db *DB) RemoveDomain(ctx context.Context, name string, force bool, at time.Time) (ended []string, err error) {
	err = db.write(ctx, "remove domain", func(tx pgx.Tx) error {
		if err := lockDomain(ctx, tx, name, forUpdate); err != nil {
			return err
		}
		var users int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE domain = $1`, name).Scan(&users); err != nil {
			return err
		}
		if users > 0 && !force {
			noun := "users"
			if users == 1 {
				noun = "user"
			}
			return pos.Errorf(pos.ECONFLICT, "domain %q has %d %s; remove them first or use -force", name, users, noun)
		}
		ended, err = endSessions(ctx, tx, at, protocol.ReasonRevoked, `domain = $1`, name)
		if err != nil {
			return err
		}
		// Dependants before what they reference; group_permissions go
		// with their groups (ON DELETE CASCADE).
		for _, table := range []string{"users", "groups", "settings", "settings_changes"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE domain = $1`, name); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM domains WHERE name = $1`, name); err != nil {
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
func logDomainChange(ctx context.Context, tx pgx.Tx, name string, removed bool, at time.Time) error {
	seq, err := appendLog(ctx, tx, "domain_changes", 1)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO domain_changes (seq, domain, removed, at) VALUES ($1, $2, $3, $4)`,
		seq, name, removed, millis(at))
	return err
}

// DomainChanges returns the domain log's entries after seq, oldest first,
// at most limit; none when limit is not positive. Seqs commit in order
// (appendLog), so none is missed.
func (db *DB) DomainChanges(ctx context.Context, after int64, limit int) ([]pos.DomainChange, error) {
	return readLog(ctx, db, "domain changes", `seq, domain, removed FROM domain_changes`, after, limit,
		func(row pgx.CollectableRow) (pos.DomainChange, error) {
			var c pos.DomainChange
			err := row.Scan(&c.Seq, &c.Domain, &c.Removed)
			return c, err
		})
}

// LastDomainChange is the domain log's newest seq, 0 when it is empty.
// Read it before Domains: a change committed between the two is then seen
// twice rather than missed.
func (db *DB) LastDomainChange(ctx context.Context) (int64, error) {
	return lastSeq(ctx, db, "last domain change", "domain_changes")
}
