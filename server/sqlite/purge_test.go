package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"idleguard/server/pos"
)

// mustInsertEnded writes n sessions ended at endedAt, and as many session
// end log entries, in one transaction: a purge's backlog. SQLite counts
// the rows out itself (a recursive CTE), far faster than n statements.
func mustInsertEnded(tb testing.TB, db *DB, prefix string, n int, endedAt time.Time) {
	tb.Helper()
	ctx := context.Background()
	const count = `WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?) `
	mustNoErr(tb, db.write(ctx, "insert ended", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, count+`
			INSERT INTO sessions (id, user_id, username, created, last_activity, revoked, revoked_at, revoked_reason)
			SELECT printf('%s-%07d', ?, i), 1, 'admin', ?, ?, 1, ?, 'idle' FROM n`,
			n, prefix, millis(t0), millis(t0), millis(endedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, count+`
			INSERT INTO session_ends (session_id, at, reason)
			SELECT printf('%s-%07d', ?, i), ?, 'revoked' FROM n`,
			n, prefix, millis(endedAt))
		return err
	}))
}

func mustCount(tb testing.TB, db *DB, query string, args ...any) int {
	tb.Helper()
	var n int
	mustNoErr(tb, db.r.QueryRowContext(context.Background(), query, args...).Scan(&n))
	return n
}

// TestPurgeInBatches: a purge of a backlog of ended sessions deletes them
// all, but no transaction of it more than purgeBatchRows rows, so other
// writes go in between (BenchmarkPurgeBatch times a batch).
func TestPurgeInBatches(t *testing.T) {
	ctx := context.Background()
	old := 10*purgeBatchRows + 123 // eleven batches
	if raceEnabled {
		old = 2*purgeBatchRows + 123
	}
	cutoff := at(1000)
	// Each subtest purges a copy of one file: making the backlog is what
	// takes time.
	template := filepath.Join(t.TempDir(), "backlog.db")
	{
		db, err := Open(ctx, template)
		mustNoErr(t, err)
		admin := seed(t, db)
		mustInsertEnded(t, db, "old", old, at(10))
		mustInsertEnded(t, db, "recent", 7, cutoff) // not before the cutoff: kept
		for _, id := range []string{"live1", "live2"} {
			mustNoErr(t, db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: id, UserID: admin.ID, Username: admin.Name, Created: t0, LastActivity: t0}))
		}
		mustNoErr(t, db.Close()) // the last close folds the WAL into the file
	}
	newDB := func(t *testing.T) *DB {
		b, err := os.ReadFile(template)
		mustNoErr(t, err)
		path := filepath.Join(t.TempDir(), "idleguard.db")
		mustNoErr(t, os.WriteFile(path, b, 0o600))
		return mustOpenPath(t, path)
	}
	countEnded := func(t *testing.T, db *DB) int {
		return mustCount(t, db, `SELECT count(*) FROM sessions WHERE revoked = 1`)
	}

	t.Run("OneBatchIsBounded", func(t *testing.T) {
		db := newDB(t)
		n, err := db.purgeBatch(ctx, "purge sessions", purgeSessionsSQL, millis(cutoff))
		mustNoErr(t, err)
		if n != purgeBatchRows {
			t.Errorf("one batch deleted %d sessions, want %d", n, purgeBatchRows)
		}
		if got, want := countEnded(t, db), old+7-purgeBatchRows; got != want {
			t.Errorf("ended sessions after one batch: got %d, want %d", got, want)
		}
		n, err = db.purgeBatch(ctx, "purge session ends", purgeSessionEndsSQL, millis(cutoff))
		mustNoErr(t, err)
		if n != purgeBatchRows {
			t.Errorf("one batch deleted %d log entries, want %d", n, purgeBatchRows)
		}
	})

	t.Run("PurgeDeletesAll", func(t *testing.T) {
		db := newDB(t)
		n, err := db.PurgeSessions(ctx, cutoff)
		mustNoErr(t, err)
		if n != old {
			t.Errorf("PurgeSessions: got %d, want %d", n, old)
		}
		if got := countEnded(t, db); got != 7 {
			t.Errorf("ended sessions left: got %d, want the 7 recent", got)
		}
		if got := mustCount(t, db, `SELECT count(*) FROM sessions WHERE revoked = 0`); got != 2 {
			t.Errorf("live sessions left: got %d, want 2", got)
		}
		if got := mustCount(t, db, `SELECT count(*) FROM session_ends`); got != 7 {
			t.Errorf("session end log left: got %d, want the 7 recent", got)
		}
		n, err = db.PurgeSessions(ctx, cutoff)
		mustNoErr(t, err)
		if n != 0 {
			t.Errorf("second PurgeSessions: got %d, want 0", n)
		}
	})

	// A write that arrives once the purge has begun goes in after the
	// batch under way, not after the whole purge: the writer pool hands
	// its connection to the oldest waiter when a batch commits.
	t.Run("WriteGoesBetweenBatches", func(t *testing.T) {
		db := newDB(t)
		purged := make(chan error, 1)
		go func() {
			_, err := db.PurgeSessions(ctx, cutoff)
			purged <- err
		}()
		// A batch commits every few ms; one purge transaction would show
		// nothing deleted until it had deleted everything.
		for countEnded(t, db) == old+7 {
			select {
			case err := <-purged:
				t.Fatalf("purge ended (%v) before anything was seen deleted", err)
			default:
			}
		}
		mustNoErr(t, db.SaveActivity(ctx, []pos.Activity{{SessionID: "live1", LastActivity: at(1)}}))
		if left := countEnded(t, db); left <= 7 {
			t.Errorf("ended sessions left when a write queued mid-purge committed: got %d, want the purge still going", left)
		}
		mustNoErr(t, <-purged)
	})

	t.Run("Cancelled", func(t *testing.T) {
		db := newDB(t)
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		n, err := db.PurgeSessions(cancelled, cutoff)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("PurgeSessions with a cancelled context: got %d, %v, want context.Canceled", n, err)
		}
		if got := countEnded(t, db); got != old+7 {
			t.Errorf("ended sessions after a cancelled purge: got %d, want %d", got, old+7)
		}
	})
}

// BenchmarkPurgeBatch times one purge transaction (purgeBatchRows ended
// sessions) in a backlog of 20,000 and of a million: how long a purge holds
// the writer at a time. p99 and max include the batches whose commit ran
// SQLite's automatic checkpoint (every 1,000 pages of WAL), as any write's
// may.
//
//	go test -run '^$' -bench PurgeBatch -benchtime 400x ./server/sqlite/
func BenchmarkPurgeBatch(b *testing.B) {
	for _, backlog := range []int{20_000, 1_000_000} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			ctx := context.Background()
			db := MustOpenDB(b)
			cutoff := millis(at(1000))
			fill := func() {
				mustInsertEnded(b, db, fmt.Sprint(time.Now().UnixNano()), backlog, at(10))
				// The backlog's own WAL is not the purge's to checkpoint.
				mustNoErr(b, db.Checkpoint(ctx))
			}
			fill()
			var batches []time.Duration
			for b.Loop() {
				start := time.Now()
				n, err := db.purgeBatch(ctx, "purge sessions", purgeSessionsSQL, cutoff)
				if err != nil {
					b.Fatal(err)
				}
				batches = append(batches, time.Since(start))
				if n < purgeBatchRows {
					b.StopTimer()
					fill()
					b.StartTimer()
				}
			}
			slices.Sort(batches)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(batches[len(batches)/2]), "p50-ms/batch")
			b.ReportMetric(ms(batches[len(batches)*99/100]), "p99-ms/batch")
			b.ReportMetric(ms(batches[len(batches)-1]), "max-ms/batch")
		})
	}
}
