package postgres

import (
	"context"
	"os"
	"strings"
	"testing"

	"idleguard/server/internal/pgtest"
	"idleguard/server/internal/storetest"
	"idleguard/server/pos"
)

// pg is this package's PostgreSQL server, started by the first test that
// asks for a database and stopped by TestMain.
var pg = pgtest.New()

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// mustOpen opens the database at url and closes it when the test ends.
func mustOpen(tb testing.TB, url string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), url)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// mustCount runs a query of one count.
func mustCount(tb testing.TB, db *DB, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := db.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestContract runs the behaviour every pos.Store shares on a real
// PostgreSQL server: a new database for each test, opened again where a
// test restarts.
func TestContract(t *testing.T) {
	storetest.Contract(t, storetest.Impl{
		New: func(t *testing.T) func(t *testing.T) pos.Store {
			url := pg.Database(t)
			return func(t *testing.T) pos.Store { return mustOpen(t, url) }
		},
		Rows: func(t *testing.T, s pos.Store, table, domain string) int {
			t.Helper()
			if domain == "" {
				return mustCount(t, s.(*DB), `SELECT count(*) FROM `+table)
			}
			return mustCount(t, s.(*DB), `SELECT count(*) FROM `+table+` WHERE domain = $1`, domain)
		},
	})
}

func TestOpenRefused(t *testing.T) {
	ctx := context.Background()
	for name, url := range map[string]string{
		"NotAURL":   "postgres://[::1",
		"NoServer":  "postgres://idleguard@127.0.0.1:1/x?sslmode=disable&connect_timeout=2",
		"NoSuchDB":  strings.Replace(pg.Database(t), "?", "_missing?", 1),
		"BadOption": "postgres://idleguard@127.0.0.1:1/x?sslmode=nonsense",
	} {
		t.Run(name, func(t *testing.T) {
			db, err := Open(ctx, url)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q): got nil error, want one", url)
			}
			if !strings.HasPrefix(err.Error(), "postgres: ") || pos.ErrorCode(err) != pos.EINTERNAL {
				t.Errorf("Open(%q): got %q (%s), want an internal error starting postgres:", url, err, pos.ErrorCode(err))
			}
		})
	}
}

func TestCheckpointIsNoOp(t *testing.T) {
	db := mustOpen(t, pg.Database(t))
	if err := db.Checkpoint(context.Background()); err != nil {
		t.Errorf("Checkpoint: got %v, want nil", err)
	}
}
