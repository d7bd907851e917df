package postgres

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// CreateSession stores a new session of s.Domain (ENOTFOUND if the domain
// does not exist); ECONFLICT if its ID is taken.
func (db *DB) CreateSession(ctx context.Context, s pos.Session) error {
	var revokedAt *int64 // NULL until revoked
	if s.Revoked {
		ms := millis(s.RevokedAt)
		revokedAt = &ms
	}
	return db.write(ctx, "create session", func(tx pgx.Tx) error {
		// Checked here, not by a foreign key: a session's row outlives its
		// domain until the purge.
		if err := lockDomain(ctx, tx, s.Domain, keyShare); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO sessions (domain, id, user_id, username, created, last_activity, revoked, revoked_at, revoked_reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT DO NOTHING`,
			s.Domain, s.ID, s.UserID, s.Username, millis(s.Created), millis(s.LastActivity),
			s.Revoked, revokedAt, s.RevokedReason.String())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pos.Errorf(pos.ECONFLICT, "session %q already exists", s.ID)
		}
		return nil
	})
}

const sessionColumns = `domain, id, user_id, username, created, last_activity, revoked, revoked_at, revoked_reason`

// Session returns one session, revoked or not, with its domain
// (ENOTFOUND).
func (db *DB) Session(ctx context.Context, id string) (pos.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rows, _ := db.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id)
	s, err := pgx.CollectOneRow(rows, scanSession)
	if errors.Is(err, pgx.ErrNoRows) {
		return pos.Session{}, pos.Errorf(pos.ENOTFOUND, "session %q not found", id)
	}
	return s, wrap("session", err)
}

// LiveSessions returns every session not revoked, of every domain, oldest
// first.
func (db *DB) LiveSessions(ctx context.Context) ([]pos.Session, error) {
	// Every live session of every domain: a start's one long read.
	ctx, cancel := context.WithTimeout(ctx, 10*callTimeout)
	defer cancel()
	rows, _ := db.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE NOT revoked ORDER BY created, id`)
	sessions, err := collect(rows, scanSession)
	return sessions, wrap("live sessions", err)
}

// SaveActivity writes a batch of last-activity times in one transaction
// and one statement. greatest() keeps a late, older write from moving a
// time backwards (an id twice in the batch counts with its latest);
// revoked sessions keep the activity they ended with. Unknown IDs are
// skipped.
func (db *DB) SaveActivity(ctx context.Context, batch []pos.Activity) error {
	if len(batch) == 0 {
		return nil
	}
	latest := make(map[string]int64, len(batch))
	for _, a := range batch {
		if t, ok := latest[a.SessionID]; !ok || millis(a.LastActivity) > t {
			latest[a.SessionID] = millis(a.LastActivity)
		}
	}
	ids := slices.Sorted(maps.Keys(latest))
	times := make([]int64, len(ids))
	for i, id := range ids {
		times[i] = latest[id]
	}
	return db.write(ctx, "save activity", func(tx pgx.Tx) error {
		if err := lockSessions(ctx, tx, ids); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			UPDATE sessions s SET last_activity = greatest(s.last_activity, a.t)
			FROM unnest($1::text[], $2::bigint[]) AS a (id, t)
			WHERE s.id = a.id AND NOT s.revoked`, ids, times)
		return err
	})
}

// lockSessions locks the live sessions of ids, in id order: two nodes
// writing batches of the same sessions would otherwise each lock rows in
// whatever order its UPDATE met them, and deadlock.
func lockSessions(ctx context.Context, tx pgx.Tx, ids []string) error {
	_, err := tx.Exec(ctx, `SELECT 1 FROM sessions WHERE id = ANY($1) AND NOT revoked ORDER BY id FOR UPDATE`, ids)
	return err
}

// RevokeSessions ends a batch of sessions in one transaction and one
// statement: one commit for the batch, as 5,000 sessions reaching their
// deadline in the same second would otherwise cost 5,000 commits. A
// session already revoked keeps its first time and reason, as does one
// twice in the batch; unknown IDs are skipped.
func (db *DB) RevokeSessions(ctx context.Context, batch []pos.Revocation) error {
	if len(batch) == 0 {
		return nil
	}
	first := make(map[string]pos.Revocation, len(batch))
	for _, r := range batch {
		if _, ok := first[r.SessionID]; !ok {
			first[r.SessionID] = r
		}
	}
	ids := slices.Sorted(maps.Keys(first))
	ats := make([]int64, len(ids))
	reasons := make([]string, len(ids))
	for i, id := range ids {
		ats[i], reasons[i] = millis(first[id].At), first[id].Reason.String()
	}
	return db.write(ctx, "revoke sessions", func(tx pgx.Tx) error {
		if err := lockSessions(ctx, tx, ids); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			UPDATE sessions s SET revoked = true, revoked_at = r.at, revoked_reason = r.reason
			FROM unnest($1::text[], $2::bigint[], $3::text[]) AS r (id, at, reason)
			WHERE s.id = r.id AND NOT s.revoked`, ids, ats, reasons)
		return err
	})
}

// purgeBatchRows bounds the rows one purge statement deletes, so that a
// purge of a million ended sessions is many short transactions rather
// than one that holds its row locks, and the WAL, for the whole purge.
const purgeBatchRows = 1000

// The purge statements delete at most one batch, oldest first by their
// index; $1 is the cutoff, $2 the batch.
const (
	purgeSessionsSQL = `
		DELETE FROM sessions WHERE id IN (
			SELECT id FROM sessions WHERE revoked AND revoked_at < $1 LIMIT $2)`
	purgeSessionEndsSQL = `
		DELETE FROM session_ends WHERE seq IN (
			SELECT seq FROM session_ends WHERE at < $1 LIMIT $2)`
	purgeDomainChangesSQL = `
		DELETE FROM domain_changes WHERE seq IN (
			SELECT seq FROM domain_changes WHERE at < $1 LIMIT $2)`
)

// PurgeSessions deletes sessions revoked before the given time, then
// session end and domain log entries as old, in statements of at most
// purgeBatchRows rows, each its own transaction, and reports how many
// sessions. A cancelled ctx stops it between batches, with what was
// deleted so far counted. A seq purged never comes back: log_heads keeps
// counting.
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
		bctx, cancel := context.WithTimeout(ctx, callTimeout)
		tag, err := db.pool.Exec(bctx, query, cutoff, purgeBatchRows)
		cancel()
		if err != nil {
			return total, wrap(op, err)
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < purgeBatchRows {
			return total, nil
		}
	}
}

func scanSession(row pgx.CollectableRow) (pos.Session, error) {
	var s pos.Session
	var created, last int64
	var revokedAt *int64
	var reason string
	if err := row.Scan(&s.Domain, &s.ID, &s.UserID, &s.Username, &created, &last,
		&s.Revoked, &revokedAt, &reason); err != nil {
		return pos.Session{}, err
	}
	s.RevokedReason = protocol.ParseReason(reason)
	s.Created = fromMillis(created)
	s.LastActivity = fromMillis(last)
	if revokedAt != nil {
		s.RevokedAt = fromMillis(*revokedAt)
	}
	return s, nil
}
