// Package sqlite keeps idleguard's domains, users, settings and sessions
// in one embedded SQLite file (pure Go, WAL), so a single node survives
// restarts with no database service to install.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"idleguard/server/datadir"
	"idleguard/server/pos"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is a pos.Store on a SQLite file.
//
// Writes go through w, a pool of exactly one connection whose transactions
// begin IMMEDIATE: in this process writers queue on the pool (honouring
// their context) instead of racing for SQLite's write lock, and a second
// process on the same file (the `user` subcommand) waits on busy_timeout
// rather than failing mid-transaction. Reads use r, a small pool of
// query_only connections that WAL lets run beside the writer.
type DB struct {
	w *sql.DB
	r *sql.DB
}

var _ pos.Store = (*DB)(nil)

// busyTimeout is how long a connection waits for another process's lock.
const busyTimeout = 5 * time.Second

// FileName is the database's name inside a data directory.
const FileName = "idleguard.db"

// Open opens the database at path, creating it (mode 0600) if it is
// missing, and brings its schema up to date. The directory must exist
// (datadir.Ensure). Existing files are made private first, and a file that
// another user owns or that is not a regular file is refused
// (datadir.CheckFile): SQLite would use them as it finds them.
func Open(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := checkFiles(abs, abs+"-wal", abs+"-shm"); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// SQLite would create the file with the umask's mode (often 0644);
	// password hashes and sessions are for this user's eyes only.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}

	w, err := openPool(ctx, abs, "&_txlock=immediate", 1)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", abs, err)
	}
	r, err := openPool(ctx, abs, "&_pragma=query_only(1)", max(4, runtime.GOMAXPROCS(0)))
	if err != nil {
		w.Close()
		return nil, err
	}
	// SQLite has made the -wal and -shm files by now where they were
	// missing. It gives them the database file's mode, private by now, but
	// that is its choice, not a promise: check them as well.
	if err := checkFiles(abs+"-wal", abs+"-shm"); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	return &DB{w: w, r: r}, nil
}

// checkFiles runs datadir.CheckFile on each path that exists.
func checkFiles(paths ...string) error {
	for _, p := range paths {
		if err := datadir.CheckFile(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Close closes both pools; the last connection to close checkpoints the WAL
// into the main file.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// openPool opens a pool whose every connection carries the same pragmas: the
// driver runs the DSN's pragmas on each new connection, whereas a PRAGMA
// statement would reach only whichever connection ran it.
func openPool(ctx context.Context, path, extra string, conns int) (*sql.DB, error) {
	dsn := "file:" + uriEscaper.Replace(path) + "?" +
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()) +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(ON)" +
		// NORMAL is durable across application crashes in WAL mode; only a
		// power loss can drop the last commits, which costs at most a few
		// seconds of last-activity times.
		"&_pragma=synchronous(NORMAL)" +
		fmt.Sprintf("&_pragma=journal_size_limit(%d)", journalSizeLimit) + extra
	p, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	p.SetMaxOpenConns(conns)
	p.SetMaxIdleConns(conns)
	// Connect now so that a bad file or pragma fails Open, not a later call.
	if err := p.PingContext(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return p, nil
}

// journalSizeLimit is the size, in bytes, SQLite cuts the WAL file back to
// each time a checkpoint lets it start over. Without it the file stays as
// large as it ever grew (about 4 MiB, the auto-checkpoint's 1,000 pages),
// which fills a small disk; Checkpoint truncates it to nothing.
const journalSizeLimit = 1 << 20

// uriEscaper escapes what would end or alter the path part of a SQLite URI.
var uriEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// migrate applies the migrations the file has not seen, all in one
// transaction, and records how far it got in PRAGMA user_version.
func migrate(ctx context.Context, w *sql.DB) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program's %d", version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}
	for i, m := range migrations[version:] {
		if _, err := tx.ExecContext(ctx, m); err != nil {
			return fmt.Errorf("migration %d: %w", version+i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the number is ours.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return err
	}
	return tx.Commit()
}

// write runs fn in a write transaction and wraps its error with op, leaving
// a *pos.Error as it is.
func (db *DB) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return wrap(op, err)
	}
	if err := tx.Commit(); err != nil {
		return wrap(op, err)
	}
	return nil
}

// read runs fn in a read transaction, so that its statements see one
// snapshot: a list that comes back empty and the domain it is of are read
// at the same moment. Errors are wrapped as write wraps them.
func (db *DB) read(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	// Nothing to commit: a rollback ends the snapshot as well.
	defer tx.Rollback()
	return wrap(op, fn(tx))
}

// wrap gives err context unless it is an *pos.Error meant for the caller.
func wrap(op string, err error) error {
	var e *pos.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// Times are stored as unix milliseconds.
func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms) }

// queryAll runs a read and scans each row with scan, wrapping errors with
// op.
func queryAll[T any](ctx context.Context, q querier, op string, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	out, err := scanAll(ctx, q, scan, query, args...)
	return out, wrap(op, err)
}

// scanAll is queryAll for a caller that wraps errors itself (in read or
// write).
func scanAll[T any](ctx context.Context, q querier, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
