package sqlite

import (
	"context"
	"strings"
	"testing"
)

// queryPlan is SQLite's plan for query, its steps joined with "; ".
func queryPlan(tb testing.TB, db *DB, query string, args ...any) string {
	tb.Helper()
	rows, err := db.w.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	mustNoErr(tb, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		mustNoErr(tb, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	mustNoErr(tb, rows.Err())
	return strings.Join(plan, "; ")
}

// TestUserSessionsUseIndex: ending a user's or a domain's sessions must
// not read every session, as ended ones pile up by the hundred thousand
// until the purge; nor reading one domain's change record every domain's.
func TestUserSessionsUseIndex(t *testing.T) {
	db := MustOpenDB(t)
	for _, tc := range []struct{ query, index string }{
		{endSessionsSQL(`user_id = ?`), "sessions_live_by_user"},
		{endSessionsSQL(`domain = ?`), "sessions_live_by_domain"},
	} {
		if got := queryPlan(t, db, tc.query, millis(t0), "revoked", 1); !strings.Contains(got, "SEARCH sessions USING") || !strings.Contains(got, "INDEX "+tc.index) {
			t.Errorf("query plan of %s: got %q, want it to use %s", tc.query, got, tc.index)
		}
	}
	got := queryPlan(t, db, `SELECT at, by, old, new FROM settings_changes WHERE domain = ? ORDER BY id DESC LIMIT ?`, "d", 10)
	if !strings.Contains(got, "INDEX settings_changes_by_domain") || strings.Contains(got, "TEMP B-TREE") {
		t.Errorf("query plan of SettingsChanges: got %q, want settings_changes_by_domain and no sort", got)
	}
}
