package pgtest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

var pg = New()

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func mustConnect(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatalf("connect %s: %v", url, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestDatabase: each test gets a database of its own on the one server,
// empty, as idleguard's user, and gone when the test ends.
func TestDatabase(t *testing.T) {
	ctx := context.Background()
	var a, b string
	t.Run("First", func(t *testing.T) {
		a = pg.Database(t)
		b = pg.Database(t)
		if a == b {
			t.Fatalf("two databases: got %s twice, want two", a)
		}
		ca, cb := mustConnect(t, a), mustConnect(t, b)
		if _, err := ca.Exec(ctx, `CREATE TABLE only_in_a (x int)`); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := cb.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("a's table in b: got %d, %v, want none", n, err)
		}
		var who, encoding, collation string
		if err := ca.QueryRow(ctx, `SELECT current_user, pg_encoding_to_char(encoding), datcollate
			FROM pg_database WHERE datname = current_database()`).Scan(&who, &encoding, &collation); err != nil {
			t.Fatal(err)
		}
		if who != User || encoding != "UTF8" || collation != "C" {
			t.Errorf("database: got user %s, encoding %s, collation %s, want %s, UTF8, C", who, encoding, collation, User)
		}
	})
	// The subtest's cleanup dropped both.
	var names []string
	pg.mu.Lock()
	adminURL := pg.inst.url("postgres")
	pg.mu.Unlock()
	admin := mustConnect(t, adminURL)
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 't%'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{a, b} {
		for _, name := range names {
			if strings.Contains(url, "/"+name+"?") {
				t.Errorf("database %s after its test ended: got it there, want it dropped", name)
			}
		}
	}
}

// TestParallelDatabases: tests in parallel each create their own at once.
func TestParallelDatabases(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			conn := mustConnect(t, pg.Database(t))
			if _, err := conn.Exec(context.Background(), `CREATE TABLE t (x int)`); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDatabaseName(t *testing.T) {
	for _, tc := range []struct {
		n          int
		test, want string
	}{
		{1, "TestX/Sub_Test-2", "t1_testx_sub_test_2"},
		{12, strings.Repeat("A", 100), "t12_" + strings.Repeat("a", 59)},
	} {
		if got := databaseName(tc.n, tc.test); got != tc.want || len(got) > 63 {
			t.Errorf("databaseName(%d, %q): got %q, want %q", tc.n, tc.test, got, tc.want)
		}
	}
}

// outcome is what a test helper did to its testing.TB.
type outcome struct {
	failed, skipped bool
	msg             string
}

// recorder is a testing.TB whose Fatalf and Skipf are recorded, and end
// the goroutine as the real ones do.
type recorder struct {
	testing.TB
	mu  sync.Mutex
	out outcome
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.end(outcome{failed: true, msg: fmt.Sprintf(format, args...)})
}

func (r *recorder) Skipf(format string, args ...any) {
	r.end(outcome{skipped: true, msg: fmt.Sprintf(format, args...)})
}

func (r *recorder) end(o outcome) {
	r.mu.Lock()
	r.out = o
	r.mu.Unlock()
	runtime.Goexit()
}

// database runs s.Database on a recorder and reports what it did.
func database(t *testing.T, s *Server) outcome {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Database(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out
}

// TestNotInstalled: without a server the tests fail saying how to install
// one, unless told to skip.
func TestNotInstalled(t *testing.T) {
	missing := func() (string, error) { return "", &missingError{looked: "nowhere"} }

	t.Run("Fails", func(t *testing.T) {
		t.Setenv(SkipEnv, "")
		got := database(t, &Server{binDir: missing})
		if !got.failed || !strings.Contains(got.msg, "make postgres") || !strings.Contains(got.msg, SkipEnv+"=1") {
			t.Errorf("Database without a server: got %+v, want a failure naming make postgres and %s=1", got, SkipEnv)
		}
	})
	t.Run("Skips", func(t *testing.T) {
		t.Setenv(SkipEnv, "1")
		got := database(t, &Server{binDir: missing})
		if !got.skipped || !strings.Contains(got.msg, "not installed") {
			t.Errorf("Database without a server and %s=1: got %+v, want a skip", SkipEnv, got)
		}
	})
	t.Run("BinEnv", func(t *testing.T) {
		t.Setenv(BinEnv, t.TempDir())
		_, err := findBinDir()
		if err == nil || !strings.Contains(err.Error(), BinEnv+"=") {
			t.Errorf("findBinDir with an empty %s: got %v, want it named", BinEnv, err)
		}
	})
}

// TestStop: Stop ends the server's process and removes its directory;
// the server serves no database after.
func TestStop(t *testing.T) {
	s := New()
	if err := s.Stop(); err != nil {
		t.Errorf("Stop of a server never started: got %v, want nil", err)
	}
	s = New()
	mustConnect(t, s.Database(t)).Close(context.Background())
	inst := s.inst
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-inst.exited:
	default:
		t.Error("postgres after Stop: got it running, want it exited")
	}
	if _, err := os.Stat(inst.dir); !os.IsNotExist(err) {
		t.Errorf("directory after Stop: got %v, want it removed", err)
	}
	if got := database(t, s); !got.failed || !strings.Contains(got.msg, "stopped") {
		t.Errorf("Database after Stop: got %+v, want a failure", got)
	}
}
