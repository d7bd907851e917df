package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
)

var t0 = time.UnixMilli(1_767_225_600_000)

// mustSessions creates live sessions of user 1 in the default domain.
func mustSessions(tb testing.TB, db *DB, ids ...string) {
	tb.Helper()
	for _, id := range ids {
		if err := db.CreateSession(context.Background(), pos.Session{Domain: pos.DefaultDomain, ID: id,
			UserID: 1, Username: "u", Created: t0, LastActivity: t0}); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestLogAppendsCommitInOrder: an appender to a log waits for the one
// before it to commit, so that a reader never reads past a seq that is
// yet to commit: had the second drawn its seq from a sequence, it would
// commit first, and a reader positioned after it would never see the
// first.
func TestLogAppendsCommitInOrder(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, pg.Database(t))
	mustSessions(t, db, "first", "second")

	// The first end, drawn and not yet committed.
	tx, err := db.pool.Begin(ctx)
	mustNoErr(t, err)
	defer tx.Rollback(ctx)
	if _, err := endSessions(ctx, tx, t0, protocol.ReasonSignedOut, `id = $1`, "first"); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- db.RevokeSession(ctx, "second", t0, protocol.ReasonSignedOut) }()
	select {
	case err := <-second:
		t.Fatalf("the second end, while the first was not committed: got it done (%v), want it waiting", err)
	case <-time.After(300 * time.Millisecond):
	}
	if ends, err := db.SessionEnds(ctx, 0, 10); err != nil || len(ends) != 0 {
		t.Errorf("log before either commit: got %+v, %v, want empty", ends, err)
	}
	mustNoErr(t, tx.Commit(ctx))
	mustNoErr(t, <-second)
	ends, err := db.SessionEnds(ctx, 0, 10)
	mustNoErr(t, err)
	if len(ends) != 2 || ends[0].SessionID != "first" || ends[1].SessionID != "second" || ends[1].Seq != ends[0].Seq+1 {
		t.Errorf("log: got %+v, want first then second, seqs in a row", ends)
	}
}

// TestLogReaderMissesNothing: many appenders to both logs at once, and a
// reader of each that pages from where it left off, as a running server
// does: each reader ends with every entry, once, in seq order.
func TestLogReaderMissesNothing(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, pg.Database(t))
	const writers, each = 6, 15
	var ids []string
	for w := range writers {
		for i := range each {
			ids = append(ids, fmt.Sprintf("w%d-%d", w, i))
		}
	}
	mustSessions(t, db, ids...)

	done := make(chan struct{})
	type read struct {
		seqs []int64
		err  error
	}
	follow := func(page func(after int64) ([]int64, error)) <-chan read {
		out := make(chan read, 1)
		go func() {
			var r read
			var after int64
			for {
				finished := false
				select {
				case <-done:
					finished = true // one more read after the last commit
				default:
				}
				seqs, err := page(after)
				if err != nil {
					r.err = err
					break
				}
				r.seqs = append(r.seqs, seqs...)
				if len(seqs) > 0 {
					after = seqs[len(seqs)-1]
				} else if finished {
					break
				}
			}
			out <- r
		}()
		return out
	}
	ends := follow(func(after int64) ([]int64, error) {
		page, err := db.SessionEnds(ctx, after, 7)
		var seqs []int64
		for _, e := range page {
			seqs = append(seqs, e.Seq)
		}
		return seqs, err
	})
	changes := follow(func(after int64) ([]int64, error) {
		page, err := db.DomainChanges(ctx, after, 7)
		var seqs []int64
		for _, c := range page {
			seqs = append(seqs, c.Seq)
		}
		return seqs, err
	})
	for w, err := range together(writers, func(w int) error {
		for i := range each {
			if err := db.RevokeSession(ctx, fmt.Sprintf("w%d-%d", w, i), t0, protocol.ReasonSignedOut); err != nil {
				return err
			}
			if err := db.AddDomain(ctx, fmt.Sprintf("w%d-%d", w, i), t0); err != nil {
				return err
			}
		}
		return nil
	}) {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	close(done)
	var want []int64
	for i := range writers * each {
		want = append(want, int64(i+1))
	}
	for name, r := range map[string]read{"session end log": <-ends, "domain log": <-changes} {
		if r.err != nil {
			t.Errorf("%s reader: %v", name, r.err)
		}
		if !slices.Equal(r.seqs, want) {
			t.Errorf("%s reader: got seqs %v, want 1 to %d, each once, in order", name, r.seqs, len(want))
		}
	}
}

func mustNoErr(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
