package postgres

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// Sessions ended outside the idle clock go through endSessions, which
// records each one in the session end log (table session_ends): the log is
// how a running server learns that the CLI or another node ended a
// session whose sockets that server holds. The idle clock's own expiries
// (RevokeSessions) are not logged: the node that decided them knows.

// endSessions ends the live sessions that where matches (its parameters
// from $1, args), records each in the session end log, and returns their
// ids, sorted. A session already ended keeps its first time and reason.
// The rows are locked in id order first, as lockSessions does.
func endSessions(ctx context.Context, tx pgx.Tx, at time.Time, reason protocol.Reason, where string, args ...any) ([]string, error) {
	rows, _ := tx.Query(ctx, `SELECT id FROM sessions WHERE NOT revoked AND `+where+` ORDER BY id FOR UPDATE`, args...)
	ids, err := collect(rows, pgx.RowTo[string])
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	// Sorted as Go sorts, whatever the column's collation.
	slices.Sort(ids)
	if _, err := tx.Exec(ctx,
		`UPDATE sessions SET revoked = true, revoked_at = $1, revoked_reason = $2 WHERE id = ANY($3)`,
		millis(at), reason.String(), ids); err != nil {
		return nil, err
	}
	seq, err := appendLog(ctx, tx, "session_ends", len(ids))
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO session_ends (seq, session_id, at, reason)
		SELECT $1 + e.i - 1, e.id, $3, $4 FROM unnest($2::text[]) WITH ORDINALITY AS e (id, i)`,
		seq, ids, millis(at), reason.String()); err != nil {
		return nil, err
	}
	return ids, nil
}

// RevokeSession ends a session (ENOTFOUND if unknown) and logs it.
// Revoking it again succeeds, keeps the first time and reason, and logs
// nothing.
func (db *DB) RevokeSession(ctx context.Context, id string, at time.Time, reason protocol.Reason) error {
	return db.write(ctx, "revoke session", func(tx pgx.Tx) error {
		ended, err := endSessions(ctx, tx, at, reason, `id = $1`, id)
		if err != nil || len(ended) > 0 {
			return err
		}
		var one int
		err = tx.QueryRow(ctx, `SELECT 1 FROM sessions WHERE id = $1`, id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return pos.Errorf(pos.ENOTFOUND, "session %q not found", id)
		}
		return err
	})
}

// RevokeUserSessions ends every live session of a user, logs each, and
// returns their ids, sorted.
func (db *DB) RevokeUserSessions(ctx context.Context, userID int64, at time.Time, reason protocol.Reason) ([]string, error) {
	var ended []string
	err := db.write(ctx, "revoke user sessions", func(tx pgx.Tx) (err error) {
		ended, err = endSessions(ctx, tx, at, reason, `user_id = $1`, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// RevokeOrphanSessions ends (reason "revoked", logged) every live session
// whose user no longer exists, or no longer has the session's username
// and domain: a token authenticates only as the user, of the domain, it
// was issued to. It reports how many it ended; a node runs it at start.
func (db *DB) RevokeOrphanSessions(ctx context.Context, at time.Time) (int, error) {
	var ended []string
	err := db.write(ctx, "revoke orphan sessions", func(tx pgx.Tx) (err error) {
		ended, err = endSessions(ctx, tx, at, protocol.ReasonRevoked, `NOT EXISTS (
			SELECT 1 FROM users u WHERE u.id = sessions.user_id
				AND u.name = sessions.username AND u.domain = sessions.domain)`)
		return err
	})
	return len(ended), err
}

// SessionEnds returns the log's entries after seq, oldest first, at most
// limit; none when limit is not positive. Seqs commit in order
// (appendLog), so an entry never appears behind one already read.
func (db *DB) SessionEnds(ctx context.Context, after int64, limit int) ([]pos.SessionEnd, error) {
	return readLog(ctx, db, "session ends", `seq, session_id, reason FROM session_ends`, after, limit,
		func(row pgx.CollectableRow) (pos.SessionEnd, error) {
			var e pos.SessionEnd
			var reason string
			err := row.Scan(&e.Seq, &e.SessionID, &reason)
			e.Reason = protocol.ParseReason(reason)
			return e, err
		})
}

// LastSessionEnd is the log's newest seq, 0 when it is empty: where a
// starting server begins reading. Read it before LiveSessions: an end
// committed between the two is then seen twice rather than missed.
func (db *DB) LastSessionEnd(ctx context.Context) (int64, error) {
	return lastSeq(ctx, db, "last session end", "session_ends")
}
