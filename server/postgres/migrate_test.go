package postgres

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// mustPool opens a plain pool on url, closed when the test ends.
func mustPool(tb testing.TB, url string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// mustInts reads one column of integers.
func mustInts(tb testing.TB, pool *pgxpool.Pool, query string) []int {
	tb.Helper()
	rows, _ := pool.Query(context.Background(), query)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return got
}

// together runs fn(0) to fn(n-1) at once, each in its own goroutine,
// released together, and returns their errors.
func together(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// TestOpenTogether: nodes that start together on a new database all open
// it, and each migration is applied once.
func TestOpenTogether(t *testing.T) {
	url := pg.Database(t)
	const nodes = 8
	var mu sync.Mutex
	var dbs []*DB
	errs := together(nodes, func(int) error {
		db, err := Open(context.Background(), url)
		if err == nil {
			mu.Lock()
			dbs = append(dbs, db)
			mu.Unlock()
		}
		return err
	})
	for _, db := range dbs {
		db.Close()
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: Open: %v", i, err)
		}
	}
	var want []int
	for i := range migrations {
		want = append(want, i+1)
	}
	if got := mustInts(t, mustPool(t, url), `SELECT version FROM schema_migrations ORDER BY version`); !reflect.DeepEqual(got, want) {
		t.Errorf("schema_migrations: got %v, want %v", got, want)
	}
}

// TestMigrateOnce: migrations with a visible effect, run by many callers
// at once, then again with one more appended: each runs exactly once, in
// order.
func TestMigrateOnce(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	list := []string{
		`CREATE TABLE applied (n int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
		`INSERT INTO applied (n) VALUES (2)`,
		`INSERT INTO applied (n) VALUES (3)`,
	}
	run := func(list []string) {
		t.Helper()
		// A pool each, as nodes have.
		pools := make([]*pgxpool.Pool, 6)
		for i := range pools {
			pools[i] = mustPool(t, url)
		}
		for n, err := range together(len(pools), func(i int) error {
			return migrate(ctx, pools[i], list)
		}) {
			if err != nil {
				t.Fatalf("migrate %d: %v", n, err)
			}
		}
	}
	check := func(want ...int) {
		t.Helper()
		if got := mustInts(t, mustPool(t, url), `SELECT n FROM applied ORDER BY at`); !reflect.DeepEqual(got, want) {
			t.Errorf("rows the migrations inserted: got %v, want %v", got, want)
		}
	}
	run(list)
	check(2, 3)
	run(append(list, `INSERT INTO applied (n) VALUES (4)`))
	check(2, 3, 4)

	err := migrate(ctx, mustPool(t, url), list)
	if err == nil || !strings.Contains(err.Error(), "schema version 4 is newer than this program's 3") {
		t.Errorf("migrate with fewer migrations than applied: got %v, want it refused", err)
	}
}

// TestMigrateFailure: a migration that fails undoes every migration of
// its run and releases the lock; the next run applies them all.
func TestMigrateFailure(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	pool := mustPool(t, url)
	good := `CREATE TABLE applied (n int)`
	err := migrate(ctx, pool, []string{good, `INSERT INTO nowhere VALUES (1)`})
	if err == nil || !strings.HasPrefix(err.Error(), "migration 2: ") {
		t.Fatalf("migrate with a bad second migration: got %v, want migration 2's error", err)
	}
	if got := mustInts(t, pool, `SELECT count(*) FROM pg_tables WHERE tablename IN ('applied', 'schema_migrations')`); got[0] != 0 {
		t.Errorf("tables after the failed run: got %d, want none", got[0])
	}
	// Were the lock still held, this would wait for ever.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := migrate(ctx, pool, []string{good, `INSERT INTO applied VALUES (2)`}); err != nil {
		t.Fatalf("migrate after the failure: %v", err)
	}
	if got := mustInts(t, pool, `SELECT n FROM applied`); !reflect.DeepEqual(got, []int{2}) {
		t.Errorf("applied: got %v, want [2]", got)
	}
}

// TestNewerSchema: a program older than the database refuses to open it.
func TestNewerSchema(t *testing.T) {
	url := pg.Database(t)
	mustOpen(t, url).Close()
	if _, err := mustPool(t, url).Exec(context.Background(),
		`INSERT INTO schema_migrations (version) VALUES ($1)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), url)
	if err == nil {
		db.Close()
		t.Fatal("Open of a newer schema: got nil error, want one")
	}
	if want := fmt.Sprintf("schema version %d is newer than this program's %d", len(migrations)+1, len(migrations)); !strings.Contains(err.Error(), want) {
		t.Errorf("Open of a newer schema: got %v, want %q", err, want)
	}
}
