package sqlite

import (
	"context"
	"database/sql"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// CreateSession stores a new session of s.Domain (ENOTFOUND if the domain
// does not exist); ECONFLICT if its ID is taken.
func (db *DB) CreateSession(ctx context.Context, s pos.Session) error {
	var revokedAt any // NULL until revoked
	if s.Revoked {
		revokedAt = millis(s.RevokedAt)
	}
	return db.write(ctx, "create session", func(tx *sql.Tx) error {
		// Checked here, not by a foreign key: a session's row outlives its
		// domain until the purge.
		if err := domainExists(ctx, tx, s.Domain); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO sessions (id, domain, user_id, username, created, last_activity, revoked, revoked_at, revoked_reason)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`,
			s.ID, s.Domain, s.UserID, s.Username, millis(s.Created), millis(s.LastActivity),
			s.Revoked, revokedAt, s.RevokedReason.String())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return pos.Errorf(pos.ECONFLICT, "session %q already exists", s.ID)
		}
		return nil
	})
}

const sessionColumns = `id, domain, user_id, username, created, last_activity, revoked, revoked_at, revoked_reason`

// Session returns one session, revoked or not, with its domain
// (ENOTFOUND).
func (db *DB) Session(ctx context.Context, id string) (pos.Session, error) {
	s, err := scanSession(db.r.QueryRowContext(ctx,
		`SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id))
	if err == sql.ErrNoRows {
		return pos.Session{}, pos.Errorf(pos.ENOTFOUND, "session %q not found", id)
	}
	return s, wrap("session", err)
}

// LiveSessions returns every session not revoked, of every domain, oldest
// first.
func (db *DB) LiveSessions(ctx context.Context) ([]pos.Session, error) {
	rows, err := db.r.QueryContext(ctx,
		`SELECT `+sessionColumns+` FROM sessions WHERE revoked = 0 ORDER BY created, id`)
	if err != nil {
		return nil, wrap("live sessions", err)
	}
	defer rows.Close()
	var sessions []pos.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, wrap("live sessions", err)
		}
		sessions = append(sessions, s)
	}
	return sessions, wrap("live sessions", rows.Err())
}

// SaveActivity writes a batch of last-activity times in one transaction: one
// fsync for the batch instead of one per session. max() keeps a late,
// older write from moving a time backwards; revoked sessions keep the
// activity they ended with. Unknown IDs are skipped.
func (db *DB) SaveActivity(ctx context.Context, batch []pos.Activity) error {
	if len(batch) == 0 {
		return nil
	}
	return db.write(ctx, "save activity", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`UPDATE sessions SET last_activity = max(last_activity, ?) WHERE id = ? AND revoked = 0`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, a := range batch {
			if _, err := stmt.ExecContext(ctx, millis(a.LastActivity), a.SessionID); err != nil {
				return err
			}
		}
		return nil
	})
}

// revokeSQL ends one live session; a revoked one keeps its first time and
// reason.
const revokeSQL = `UPDATE sessions SET revoked = 1, revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked = 0`

// RevokeSessions ends a batch of sessions in one transaction: one commit
// for the batch, as 5,000 sessions reaching their deadline in the same
// second would otherwise cost 5,000 commits while their sockets are being
// signed out.
func (db *DB) RevokeSessions(ctx context.Context, batch []pos.Revocation) error {
	if len(batch) == 0 {
		return nil
	}
	return db.write(ctx, "revoke sessions", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, revokeSQL)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range batch {
			if _, err := stmt.ExecContext(ctx, millis(r.At), r.Reason.String(), r.SessionID); err != nil {
				return err
			}
		}
		return nil
	})
}

// purgeBatchRows bounds the rows one purge transaction deletes, so that a
// purge of a million ended sessions holds the writer a few milliseconds at
// a time (BenchmarkPurgeBatch) while sign-outs and activity writes queue
// behind it, instead of for the whole purge.
const purgeBatchRows = 500

// The purge statements delete at most one batch, oldest first by their
// index (sessions_revoked, session_ends_at); the first ? is the cutoff.
const (
	purgeSessionsSQL = `
		DELETE FROM sessions WHERE rowid IN (
			SELECT rowid FROM sessions WHERE revoked = 1 AND revoked_at < ? LIMIT ?)`
	purgeSessionEndsSQL = `
		DELETE FROM session_ends WHERE seq IN (
			SELECT seq FROM session_ends WHERE at < ? LIMIT ?)`
	purgeDomainChangesSQL = `
		DELETE FROM domain_changes WHERE seq IN (
			SELECT seq FROM domain_changes WHERE at < ? LIMIT ?)`
)

// PurgeSessions deletes sessions revoked before the given time, then
// session end and domain log entries as old, in transactions of at most
// purgeBatchRows rows, and reports how many sessions. Writers waiting on
// the pool go between batches; a cancelled ctx stops it between them,
// with what was deleted so far counted. The logs are kept as long as the
// sessions: a server is long past an entry by then.
func (db *DB) PurgeSessions(ctx context.Context, revokedBefore time.Time) (int, error) {
	cutoff := millis(revokedBefore)
	n, err := db.purge(ctx, "purge sessions", purgeSessionsSQL, cutoff)
	if err != nil {
		return n, err
	}
	if _, err := db.purge(ctx, "purge session ends", purgeSessionEndsSQL, cutoff); err != nil {
		return n, err
	}
	_, err = db.purge(ctx, "purge domain changes", purgeDomainChangesSQL, cutoff)
	return n, err
}

// purge runs query batch after batch until one deletes less than a full
// batch, and reports the rows deleted.
func (db *DB) purge(ctx context.Context, op, query string, cutoff int64) (int, error) {
	total := 0
	for {
		n, err := db.purgeBatch(ctx, op, query, cutoff)
		total += n
		if err != nil || n < purgeBatchRows {
			return total, err
		}
	}
}

// purgeBatch deletes one batch in one write transaction.
func (db *DB) purgeBatch(ctx context.Context, op, query string, cutoff int64) (int, error) {
	var n int64
	err := db.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, cutoff, purgeBatchRows)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface{ Scan(dest ...any) error }

func scanSession(row scanner) (pos.Session, error) {
	var s pos.Session
	var created, last int64
	var revokedAt sql.NullInt64
	var reason string
	if err := row.Scan(&s.ID, &s.Domain, &s.UserID, &s.Username, &created, &last,
		&s.Revoked, &revokedAt, &reason); err != nil {
		return pos.Session{}, err
	}
	s.RevokedReason = protocol.ParseReason(reason)
	s.Created = fromMillis(created)
	s.LastActivity = fromMillis(last)
	if revokedAt.Valid {
		s.RevokedAt = fromMillis(revokedAt.Int64)
	}
	return s, nil
}
