// Package pgtest is test support for code on PostgreSQL: a real server of
// Debian's postgresql package, started by a test package for itself in a
// temp dir on a free loopback port, and a new empty database per test.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SkipEnv, set to 1, skips the tests that need a server where none is
// installed; without it they fail, saying how to install one.
const SkipEnv = "IDLEGUARD_SKIP_POSTGRES"

// BinEnv names a directory holding initdb and postgres, for a server
// that is not Debian's.
const BinEnv = "IDLEGUARD_POSTGRES_BIN"

// User is the superuser initdb makes; every database belongs to it.
const User = "idleguard"

// Server is one PostgreSQL server for one test package's tests. It starts
// when the first test asks for a database; the package's TestMain stops
// it after the tests:
//
//	var pg = pgtest.New()
//
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
type Server struct {
	binDir func() (string, error)

	mu      sync.Mutex
	inst    *instance
	err     error // why it could not start; every later test sees it too
	stopped bool
	dbs     int // databases made, for unique names
}

// New returns a server that finds its binaries under
// /usr/lib/postgresql/<version>/bin (the newest version), in $BinEnv, or
// on PATH; nothing runs until a test asks for a database.
func New() *Server { return &Server{binDir: findBinDir} }

// Main runs m's tests, then stops the server, and returns the exit code.
func (s *Server) Main(m *testing.M) int {
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Database creates a new, empty database for tb, dropped when tb ends,
// and returns its URL (what pgx parses). It starts the server on first
// use and fails tb if it cannot, or skips tb if no server is installed
// and $SkipEnv is 1.
func (s *Server) Database(tb testing.TB) string {
	tb.Helper()
	inst, name, err := s.next(tb.Name())
	var missing *missingError
	if errors.As(err, &missing) && os.Getenv(SkipEnv) == "1" {
		tb.Skipf("pgtest: %v (skipped: %s=1)", err, SkipEnv)
	}
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	ctx := context.Background()
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := inst.admin.Exec(ctx, `CREATE DATABASE `+ident+` TEMPLATE template0`+inst.createStrategy); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := s.drop(inst, ident); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return inst.url(name)
}

// drop drops a database of inst unless the server has stopped since,
// which took it along.
func (s *Server) drop(inst *instance, ident string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inst != inst {
		return nil
	}
	// FORCE ends the connections a store left open, as a failed test may.
	_, err := inst.admin.Exec(context.Background(), `DROP DATABASE IF EXISTS `+ident+` WITH (FORCE)`)
	return err
}

// next starts the server if it has not started and names a new database
// after the test.
func (s *Server) next(test string) (*instance, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, "", errors.New("the server was stopped")
	}
	if s.inst == nil && s.err == nil {
		s.inst, s.err = start(s.binDir)
	}
	if s.err != nil {
		return nil, "", s.err
	}
	s.dbs++
	return s.inst, databaseName(s.dbs, test), nil
}

// databaseName is a name of at most 63 bytes (PostgreSQL's limit) that
// says which test made it.
func databaseName(n int, test string) string {
	name := []byte(strings.ToLower(test))
	for i, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			name[i] = '_'
		}
	}
	prefix := fmt.Sprintf("t%d_", n)
	return prefix + string(name[:min(len(name), 63-len(prefix))])
}

// Stop stops the server, if it started, and removes its directory. The
// server cannot be used after.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.inst == nil {
		return nil
	}
	err := s.inst.stop()
	s.inst = nil
	return err
}

// instance is one running server.
type instance struct {
	dir    string // data in dir/data, the socket and the log beside it
	port   int
	cmd    *exec.Cmd
	exited chan struct{} // closed when the postgres process has exited
	admin  *pgxpool.Pool // on database postgres, for CREATE and DROP DATABASE
	// createStrategy ends CREATE DATABASE: from PostgreSQL 15, copying
	// template0's files takes a third of the time of the default, which
	// writes them all to the WAL.
	createStrategy string
}

func (in *instance) url(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", User, in.port, database)
}

// missingError is the error for a machine with no server installed.
type missingError struct{ looked string }

func (e *missingError) Error() string {
	return "PostgreSQL's server is not installed (looked for " + e.looked + "): run  make postgres  " +
		"(as root it installs Debian's postgresql package; otherwise  sudo apt-get install -y postgresql), " +
		"or set " + BinEnv + " to a directory holding initdb and postgres, or " + SkipEnv + "=1 to skip these tests"
}

// findBinDir is where initdb and postgres are.
func findBinDir() (string, error) {
	if dir := os.Getenv(BinEnv); dir != "" {
		if !hasServer(dir) {
			return "", &missingError{looked: "initdb and postgres in " + BinEnv + "=" + dir}
		}
		return dir, nil
	}
	// Debian keeps the server off PATH, one directory per major version.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return majorVersion(b) - majorVersion(a) })
	for _, dir := range dirs {
		if hasServer(dir) {
			return dir, nil
		}
	}
	if path, err := exec.LookPath("postgres"); err == nil && hasServer(filepath.Dir(path)) {
		return filepath.Dir(path), nil
	}
	return "", &missingError{looked: "/usr/lib/postgresql/*/bin/postgres and postgres on PATH"}
}

// majorVersion is the number in /usr/lib/postgresql/<number>/bin, 0 if none.
func majorVersion(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}
