package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"idleguard/server/internal/storetest"
	"idleguard/server/pos"
	"idleguard/server/sqlite"
)

// TestContract runs the behaviour every pos.Store shares on a real SQLite
// file: one new file for each test, reopened where a test restarts.
func TestContract(t *testing.T) {
	storetest.Contract(t, storetest.Impl{
		New: func(t *testing.T) func(t *testing.T) pos.Store {
			path := filepath.Join(t.TempDir(), sqlite.FileName)
			return func(t *testing.T) pos.Store {
				t.Helper()
				db, err := sqlite.Open(context.Background(), path)
				if err != nil {
					t.Fatalf("Open(%q): %v", path, err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
		},
		Rows: func(t *testing.T, s pos.Store, table, domain string) int {
			t.Helper()
			return sqlite.CountRows(t, s.(*sqlite.DB), table, domain)
		},
	})
}
