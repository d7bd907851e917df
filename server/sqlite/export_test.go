package sqlite

import (
	"testing"
)

// CountRows is storetest.Impl.Rows for the contract suite
// (contract_test.go): the rows db keeps in table, of domain unless it is
// empty.
func CountRows(tb testing.TB, db *DB, table, domain string) int {
	tb.Helper()
	query, args := `SELECT count(*) FROM `+table, []any{}
	if domain != "" {
		query, args = query+` WHERE domain = ?`, append(args, domain)
	}
	return mustCount(tb, db, query, args...)
}
