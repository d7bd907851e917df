// Package postgres keeps idleguard's domains, users, settings and
// sessions in PostgreSQL (jackc/pgx/v5), so that many nodes share one
// durable store. The domain is part of every table's key: it is the shard
// key should the tables ever be split.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"idleguard/server/pos"
)

// DB is a pos.Store on a PostgreSQL database.
//
// Writes run in READ COMMITTED transactions that take their locks in one
// order: the domain's row first (FOR KEY SHARE by what writes into a
// domain, FOR UPDATE by RemoveDomain, so a removal waits for the writes
// under way and they for it), then session rows in id order, then the
// head row of a log last (appendLog). Reads of more than one statement
// run in a REPEATABLE READ snapshot, so that they see one moment.
type DB struct {
	pool *pgxpool.Pool
}

var _ pos.Store = (*DB)(nil)

// Open connects to the database at url (a URL or key=value string, as
// pgx parses it) and brings its schema up to date: several nodes opening
// the same database at once apply each migration exactly once (migrate).
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	// Connect now so that a bad address or password fails Open, not a
	// later call.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", cfg.ConnConfig.Host, err)
	}
	if err := migrate(ctx, pool, migrations); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	return &DB{pool: pool}, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Checkpoint does nothing: the server manages its own write-ahead log.
func (db *DB) Checkpoint(context.Context) error { return nil }

// maxAttempts bounds how often write runs a transaction that the server
// ended to break a deadlock or a serialization failure. The lock order
// above leaves no deadlock between this package's own writes, so a retry
// is for what it cannot order (another program's locks).
const maxAttempts = 4

// write runs fn in a READ COMMITTED transaction and wraps its error with
// op, leaving a *pos.Error as it is. fn may run more than once: a
// transaction the server aborted for a deadlock is run again.
func (db *DB) write(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = db.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
		if attempt == maxAttempts || !retryable(err) {
			return wrap(op, err)
		}
	}
}

// read runs fn in a read-only REPEATABLE READ transaction: its statements
// see one snapshot, so that a list that comes back empty and the domain
// it is of are read at the same moment.
func (db *DB) read(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	return wrap(op, db.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn))
}

// callTimeout bounds every transaction, whatever the caller's context: a
// PostgreSQL that has gone silent (a partition, not a refusal) must fail
// sign-ins and setting changes with a clear error, and never hold a
// socket's reader or a node's shutdown.
const callTimeout = 5 * time.Second

func (db *DB) inTx(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	tx, err := db.pool.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	// After a commit, Rollback does nothing. Not ctx: a cancelled context
	// must still end the transaction before the connection goes back.
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// retryable reports whether the server aborted a transaction that may
// succeed if run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// wrap gives err context unless it is an *pos.Error meant for the caller.
func wrap(op string, err error) error {
	var e *pos.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// Times are stored as unix milliseconds (bigint), as the SQLite store
// keeps them: the same precision on both, and no time zone to get wrong.
func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms) }

// querier is what *pgxpool.Pool and pgx.Tx share.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// lockDomain is nil for an existing domain, ENOTFOUND otherwise, and
// holds the domain's row (FOR KEY SHARE) until the transaction ends, so
// that RemoveDomain waits for what writes into the domain; RemoveDomain
// itself locks it FOR UPDATE. Writers of one domain do not block each
// other.
func lockDomain(ctx context.Context, tx pgx.Tx, name, mode string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM domains WHERE name = $1 FOR `+mode, name).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return pos.Errorf(pos.ENOTFOUND, "domain %q not found", name)
	}
	return err
}

// domainExists is lockDomain for a reader: nil or ENOTFOUND, no lock.
func domainExists(ctx context.Context, q querier, name string) error {
	var one int
	err := q.QueryRow(ctx, `SELECT 1 FROM domains WHERE name = $1`, name).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return pos.Errorf(pos.ENOTFOUND, "domain %q not found", name)
	}
	return err
}

// collect scans every row with scan and closes rows; nil when there are
// none, as the SQLite store returns.
func collect[T any](rows pgx.Rows, scan pgx.RowToFunc[T]) ([]T, error) {
	return pgx.AppendRows([]T(nil), rows, scan)
}
