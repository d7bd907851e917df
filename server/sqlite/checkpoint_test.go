package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func walSize(tb testing.TB, dbPath string) int64 {
	tb.Helper()
	fi, err := os.Stat(dbPath + "-wal")
	mustNoErr(tb, err)
	return fi.Size()
}

// mustGrowWAL writes about n bytes of new sessions in one transaction,
// each with a 1,000-character username, so that the WAL holds about n
// bytes more (a little over: pages are never quite full).
func mustGrowWAL(tb testing.TB, db *DB, n int) {
	tb.Helper()
	ctx := context.Background()
	mustNoErr(tb, db.write(ctx, "grow wal", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
			INSERT INTO sessions (id, user_id, username, created, last_activity)
			SELECT 'grow-' || i || '-' || random(), 1, printf('%.*c', 1000, 'u'), 0, 0 FROM n`, n/1000)
		return err
	}))
}

func TestCheckpoint(t *testing.T) {
	ctx := context.Background()

	t.Run("TruncatesWAL", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "idleguard.db")
		db := mustOpenPath(t, path)
		seed(t, db)
		mustGrowWAL(t, db, 2<<20)
		if got := walSize(t, path); got < 2<<20 {
			t.Fatalf("WAL before the checkpoint: got %d bytes, want at least 2 MiB", got)
		}
		mustNoErr(t, db.Checkpoint(ctx))
		if got := walSize(t, path); got != 0 {
			t.Errorf("WAL after Checkpoint: got %d bytes, want 0", got)
		}
		if got := mustCount(t, db, `SELECT count(*) FROM sessions`); got != (2<<20)/1000 {
			t.Errorf("sessions after Checkpoint: got %d, want %d", got, (2<<20)/1000)
		}
		// The writer is back on the usual busy timeout.
		var timeout int
		mustNoErr(t, db.w.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&timeout))
		if timeout != int(busyTimeout.Milliseconds()) {
			t.Errorf("writer busy_timeout after Checkpoint: got %d, want %d", timeout, busyTimeout.Milliseconds())
		}
	})

	// A reader holding an old snapshot keeps the checkpoint from
	// finishing; that is no failure, and the next one finishes.
	t.Run("BusyIsNoError", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "idleguard.db")
		db := mustOpenPath(t, path)
		seed(t, db)
		reader, err := db.r.BeginTx(ctx, nil)
		mustNoErr(t, err)
		defer reader.Rollback()
		var n int
		mustNoErr(t, reader.QueryRowContext(ctx, `SELECT count(*) FROM sessions`).Scan(&n)) // takes the snapshot
		mustGrowWAL(t, db, 100_000)

		mustNoErr(t, db.Checkpoint(ctx))
		if got := walSize(t, path); got == 0 {
			t.Fatalf("WAL with a reader on an old snapshot: got 0 bytes, want the checkpoint kept from truncating it")
		}
		mustNoErr(t, reader.Rollback())
		mustNoErr(t, db.Checkpoint(ctx))
		if got := walSize(t, path); got != 0 {
			t.Errorf("WAL after the reader left: got %d bytes, want 0", got)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		db := MustOpenDB(t)
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := db.Checkpoint(cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("Checkpoint with a cancelled context: got %v, want context.Canceled", err)
		}
	})

	// SQLite's own checkpoints never shrink the WAL file unless
	// journal_size_limit says to: once a checkpoint has copied every frame,
	// the next commit starts the WAL over and cuts the file back.
	t.Run("JournalSizeLimit", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "idleguard.db")
		db := mustOpenPath(t, path)
		seed(t, db)
		mustGrowWAL(t, db, 2<<20) // below the automatic checkpoint's 1,000 pages
		if got := walSize(t, path); got < 2<<20 || got > 1000*(4096+24) {
			t.Fatalf("WAL: got %d bytes, want 2 MiB to 1,000 frames", got)
		}
		var busy, frames, copied int
		mustNoErr(t, db.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied))
		if busy != 0 || frames != copied {
			t.Fatalf("PASSIVE checkpoint: got busy %d, %d of %d frames, want all", busy, copied, frames)
		}
		mustGrowWAL(t, db, 10_000)
		if got := walSize(t, path); got > journalSizeLimit {
			t.Errorf("WAL after a checkpoint and a commit: got %d bytes, want at most %d", got, journalSizeLimit)
		}
	})
}
