package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"
)

// checkpointWait is how long Checkpoint waits for readers to leave the old
// part of the WAL, and for another process's write transaction, instead of
// busy_timeout's 5 s: it holds this process's writer meanwhile, and sign-outs
// queue behind it.
const checkpointWait = 200 * time.Millisecond

// Checkpoint copies the WAL into the database file and truncates the WAL
// to zero bytes (PRAGMA wal_checkpoint(TRUNCATE)). SQLite's own
// checkpoints run only every 1,000 pages (about 4 MiB) and never shrink
// the file, so on a small disk it would fill before they do; the server
// calls this on a schedule.
//
// A checkpoint that a reader or another process's writer kept from
// finishing is no error: the WAL stays as it is, its contents safe, and the
// next call will finish it. Errors (I/O, a full disk) are returned.
func (db *DB) Checkpoint(ctx context.Context) error {
	// A connection of its own, so that the short busy timeout set here is
	// the one the checkpoint runs with; the writer pool has only this one.
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return wrap("checkpoint", err)
	}
	defer conn.Close()
	setBusyTimeout := func(ctx context.Context, d time.Duration) error {
		// PRAGMA takes no bound parameters; the number is ours.
		_, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", d.Milliseconds()))
		return err
	}
	if err := setBusyTimeout(ctx, checkpointWait); err != nil {
		return wrap("checkpoint", err)
	}
	// busy is 1 when the checkpoint could not finish; SQLite reports that
	// in the row, and only real failures as errors.
	var busy, walFrames, checkpointed int
	err = conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &walFrames, &checkpointed)
	// Restored even when ctx has ended: every later write runs on this
	// connection. If that fails, the connection is dropped instead, and
	// the pool opens a new one with the DSN's pragmas.
	if rerr := setBusyTimeout(context.WithoutCancel(ctx), busyTimeout); rerr != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn })
		if err == nil {
			err = rerr
		}
	}
	return wrap("checkpoint", err)
}
