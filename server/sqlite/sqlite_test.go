package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"idleguard/server/pos"
)

// MustOpenDB opens a new database file in a temporary directory and closes
// it when the test ends.
func MustOpenDB(tb testing.TB) *DB {
	tb.Helper()
	return mustOpenPath(tb, filepath.Join(tb.TempDir(), "idleguard.db"))
}

func mustOpenPath(tb testing.TB, path string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open(%q): %v", path, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// t0 is a whole millisecond: stored times keep millisecond precision.
var t0 = time.UnixMilli(1_767_225_600_000)

func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func mustNoErr(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// seed adds a group and its user admin to the default domain: writes
// that reach the WAL, and a user to read back. The contract suite
// (contract_test.go) seeds its own stores.
func seed(tb testing.TB, db *DB) pos.User {
	tb.Helper()
	ctx := context.Background()
	mustNoErr(tb, db.PutGroup(ctx, pos.Group{Domain: pos.DefaultDomain, Name: "developers"}))
	admin, err := db.AddUser(ctx, pos.User{Domain: pos.DefaultDomain, Name: "admin", Group: "developers", PasswordHash: []byte("h1")})
	mustNoErr(tb, err)
	return admin
}

func TestOpen(t *testing.T) {
	t.Run("FileMode", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "idleguard.db")
		db := mustOpenPath(t, path)
		seed(t, db) // writes reach the WAL file
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			mustNoErr(t, err)
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("%s mode: got %o, want 600", filepath.Base(p), got)
			}
		}
	})

	t.Run("Pragmas", func(t *testing.T) {
		db := MustOpenDB(t)
		ctx := context.Background()
		check := func(t *testing.T, q rowQuerier, pragma, want string) {
			t.Helper()
			var got string
			mustNoErr(t, q.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got))
			if got != want {
				t.Errorf("PRAGMA %s: got %q, want %q", pragma, got, want)
			}
		}
		// Every connection of both pools must carry the pragmas, so hold
		// several reader connections at once.
		var conns []rowQuerier
		w, err := db.w.Conn(ctx)
		mustNoErr(t, err)
		defer w.Close()
		conns = append(conns, w)
		for range 3 {
			r, err := db.r.Conn(ctx)
			mustNoErr(t, err)
			defer r.Close()
			conns = append(conns, r)
		}
		for i, c := range conns {
			t.Run(fmt.Sprint("conn", i), func(t *testing.T) {
				check(t, c, "journal_mode", "wal")
				check(t, c, "foreign_keys", "1")
				check(t, c, "synchronous", "1") // NORMAL
				check(t, c, "busy_timeout", "5000")
				check(t, c, "journal_size_limit", fmt.Sprint(journalSizeLimit))
			})
		}
		check(t, conns[1], "query_only", "1")
		check(t, conns[0], "query_only", "0")
	})

	t.Run("SchemaVersion", func(t *testing.T) {
		db := MustOpenDB(t)
		var got int
		mustNoErr(t, db.r.QueryRow("PRAGMA user_version").Scan(&got))
		if got != len(migrations) {
			t.Errorf("user_version: got %d, want %d", got, len(migrations))
		}
	})

	t.Run("NewerSchema", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "idleguard.db")
		db, err := Open(context.Background(), path)
		mustNoErr(t, err)
		_, err = db.w.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1))
		mustNoErr(t, err)
		mustNoErr(t, db.Close())
		if db, err := Open(context.Background(), path); err == nil {
			db.Close()
			t.Fatal("Open of a newer schema: got nil error, want one")
		}
	})

	t.Run("MissingDirectory", func(t *testing.T) {
		_, err := Open(context.Background(), filepath.Join(t.TempDir(), "no", "such.db"))
		if err == nil {
			t.Fatal("got nil error, want one")
		}
		if got := pos.ErrorCode(err); got != pos.EINTERNAL {
			t.Errorf("error code: got %q, want %q", got, pos.EINTERNAL)
		}
	})

	t.Run("OddPath", func(t *testing.T) {
		// ? and # would end the path of a SQLite URI if not escaped.
		path := filepath.Join(t.TempDir(), "a?b#c%d.db")
		db := mustOpenPath(t, path)
		seed(t, db)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("stat %q: got %v, want the database there", path, err)
		}
	})
}

func BenchmarkSaveActivity(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	batch := make([]pos.Activity, 1000)
	for i := range batch {
		id := fmt.Sprintf("session-%04d", i)
		mustNoErr(b, db.CreateSession(ctx, pos.Session{Domain: pos.DefaultDomain, ID: id, UserID: 1, Username: "u", Created: t0, LastActivity: t0}))
		batch[i].SessionID = id
	}
	var n int64
	for b.Loop() {
		n++
		for i := range batch {
			batch[i].LastActivity = at(n)
		}
		if err := db.SaveActivity(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*int64(len(batch))), "ns/session")
}
