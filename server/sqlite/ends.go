package sqlite

import (
	"context"
	"database/sql"
	"slices"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

// Sessions ended outside the idle clock go through endSessions, which
// records each one in the session end log (table session_ends): the log is
// how a running server learns that the CLI, another process, ended a
// session whose sockets that server holds. The idle clock's own expiries
// (RevokeSessions) are not logged: the server that decided them knows.

// endSessionsSQL ends the live sessions that where matches; a session
// already ended keeps its first time and reason. Its where clauses name
// user_id, domain or id, so a partial index of live sessions (by user, by
// domain) or the primary key finds the rows.
func endSessionsSQL(where string) string {
	return `
		UPDATE sessions SET revoked = 1, revoked_at = ?, revoked_reason = ?
		WHERE revoked = 0 AND ` + where + `
		RETURNING id`
}

// endSessions ends the live sessions that where matches, records each in
// the session end log, and returns their ids, sorted.
func endSessions(ctx context.Context, tx *sql.Tx, at time.Time, reason protocol.Reason, where string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, endSessionsSQL(where), append([]any{millis(at), reason.String()}, args...)...)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// RETURNING comes in no promised order; sorted, the log and the result
	// are the same however SQLite walked the rows.
	slices.Sort(ids)
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO session_ends (session_id, at, reason) VALUES (?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	for _, id := range ids {
		if _, err := stmt.ExecContext(ctx, id, millis(at), reason.String()); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// RevokeSession ends a session (ENOTFOUND if unknown) and logs it.
// Revoking it again succeeds, keeps the first time and reason, and logs
// nothing.
func (db *DB) RevokeSession(ctx context.Context, id string, at time.Time, reason protocol.Reason) error {
	return db.write(ctx, "revoke session", func(tx *sql.Tx) error {
		ended, err := endSessions(ctx, tx, at, reason, `id = ?`, id)
		if err != nil || len(ended) > 0 {
			return err
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE id = ?`, id).Scan(&one)
		if err == sql.ErrNoRows {
			return pos.Errorf(pos.ENOTFOUND, "session %q not found", id)
		}
		return err
	})
}

// RevokeUserSessions ends every live session of a user, logs each, and
// returns their ids, sorted.
func (db *DB) RevokeUserSessions(ctx context.Context, userID int64, at time.Time, reason protocol.Reason) ([]string, error) {
	var ended []string
	err := db.write(ctx, "revoke user sessions", func(tx *sql.Tx) (err error) {
		ended, err = endSessions(ctx, tx, at, reason, `user_id = ?`, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// RevokeOrphanSessions ends (reason "revoked", logged) every live session
// whose user no longer exists, or whose user id now belongs to someone
// else or to another domain: before migration 2, deleting the newest user
// let the next one created take its id and its sessions, and deleting a
// user did not end them; a token authenticates only as the user, of the
// domain, it was issued to. It reports how many it ended; run it once at
// start-up.
func (db *DB) RevokeOrphanSessions(ctx context.Context, at time.Time) (int, error) {
	var ended []string
	err := db.write(ctx, "revoke orphan sessions", func(tx *sql.Tx) (err error) {
		ended, err = endSessions(ctx, tx, at, protocol.ReasonRevoked, `NOT EXISTS (
			SELECT 1 FROM users u WHERE u.id = sessions.user_id
				AND u.name = sessions.username AND u.domain = sessions.domain)`)
		return err
	})
	return len(ended), err
}

// SessionEnds returns the log's entries after seq, oldest first, at most
// limit; none when limit is not positive. Seqs only grow, and one writer
// commits at a time, so an entry never appears behind one already read.
func (db *DB) SessionEnds(ctx context.Context, after int64, limit int) ([]pos.SessionEnd, error) {
	if limit <= 0 {
		return nil, nil // SQLite reads LIMIT -1 as "no limit"
	}
	return queryAll(ctx, db.r, "session ends", func(rows *sql.Rows) (pos.SessionEnd, error) {
		var e pos.SessionEnd
		var reason string
		err := rows.Scan(&e.Seq, &e.SessionID, &reason)
		e.Reason = protocol.ParseReason(reason)
		return e, err
	}, `SELECT seq, session_id, reason FROM session_ends
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
}

// LastSessionEnd is the log's newest seq, 0 when it is empty: where a
// starting server begins reading. Read it before LiveSessions: an end
// committed between the two is then seen twice rather than missed.
func (db *DB) LastSessionEnd(ctx context.Context) (int64, error) {
	var seq int64
	err := db.r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM session_ends`).Scan(&seq)
	return seq, wrap("last session end", err)
}
