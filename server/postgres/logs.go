package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// The session end log and the domain log are tables keyed by seq, each
// with its head, the last seq drawn, in a row of log_heads.

// appendLog draws n seqs for entries of a log (a row of log_heads) and
// returns the first. The UPDATE holds the head row's lock until the
// transaction ends, so appenders queue here and commit in seq order: an
// appender can draw its seqs only once the one before it has committed,
// and so become visible, or rolled back, returning its seqs. A reader
// that has seen an entry has seen every entry below it. Callers append
// late in a transaction, after the rows it changes, so that appenders
// queue on the head for little more than a commit.
func appendLog(ctx context.Context, tx pgx.Tx, log string, n int) (int64, error) {
	var head int64
	err := tx.QueryRow(ctx, `UPDATE log_heads SET seq = seq + $2 WHERE name = $1 RETURNING seq`, log, n).Scan(&head)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errors.New("log " + log + " has no head")
	}
	return head - int64(n) + 1, err
}

// readLog reads the entries of a log after seq, oldest first, at most
// limit (none when it is not positive); from names the columns and the
// table, seq first.
func readLog[T any](ctx context.Context, db *DB, op, from string, after int64, limit int, scan pgx.RowToFunc[T]) ([]T, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rows, _ := db.pool.Query(ctx, `SELECT `+from+` WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	entries, err := collect(rows, scan)
	return entries, wrap(op, err)
}

// lastSeq is the newest seq in a log's table, 0 when it is empty (or
// purged: the head in log_heads keeps counting, and readers need only a
// seq that none to come is below).
func lastSeq(ctx context.Context, db *DB, op, table string) (int64, error) {
	var seq int64
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := db.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM `+table).Scan(&seq)
	return seq, wrap(op, err)
}
