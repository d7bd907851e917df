package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgEngine is PostgreSQL in the run's temp dir, trusted on loopback, and a
// connection to its maintenance database for the statistics (so that
// reading them is not counted in the nodes' database; pg_stat_statements
// is created there and shows every database's statements).
const (
	pgUser     = "idleload"
	pgDatabase = "idleload"
)

type pgEngine struct {
	*engine
	addr  string
	stats *pgx.Conn
}

func (p *pgEngine) url(database string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgUser, p.addr, database)
}

// startPostgres runs initdb and postgres from /usr/lib/postgresql/N/bin;
// as root both run as the postgres user (PostgreSQL refuses root), in a
// directory it owns.
func startPostgres(ctx context.Context, dir string) (*pgEngine, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	pgDir := filepath.Join(dir, "pg")
	if err := os.MkdirAll(pgDir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL will not run as root and there is no postgres user (Debian's postgresql package makes one): %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// It must pass through the run's temp dirs (dir and the one above,
		// both made by this run, 0700) to its own: search, not listing.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				return nil, err
			}
		}
		if err := os.Chown(pgDir, int(uid), int(gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(pgDir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", pgUser, "--no-locale", "--encoding=UTF8")
	initdb.Dir = pgDir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	// Defaults but for the connections (6 nodes of 4 each, the harness)
	// and no Unix socket (its directory would have to be postgres's).
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", port, "-k", "",
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
		"-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=all")
	cmd.Dir = pgDir
	// SIGINT is PostgreSQL's fast shutdown.
	e, err := startEngine("postgres", cmd, filepath.Join(dir, "postgres.log"), syscall.SIGINT, cred)
	if err != nil {
		return nil, err
	}
	p := &pgEngine{engine: e, addr: addr}
	err = e.waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, p.url("postgres"))
		if err == nil {
			p.stats = c
		}
		return err
	})
	if err != nil {
		e.stop()
		return nil, err
	}
	for _, q := range []string{`CREATE DATABASE ` + pgDatabase, `CREATE EXTENSION pg_stat_statements`} {
		if _, err := p.stats.Exec(ctx, q); err != nil {
			p.stop()
			return nil, fmt.Errorf("PostgreSQL: %s: %w", q, err)
		}
	}
	return p, nil
}

func (p *pgEngine) stop() {
	if p == nil {
		return
	}
	if p.stats != nil {
		p.stats.Close(context.Background())
	}
	p.engine.stop()
}

// postgresBin is the newest /usr/lib/postgresql/N/bin with initdb and
// postgres.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL is missing: apt-get install -y postgresql (make postgres does it as root)")
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// pgStats is what the nodes did to PostgreSQL so far, read where it is
// exact at once: transaction ids handed out (one per transaction that
// writes), the WAL position, and pg_stat_statements' calls and rows by the
// statement's first word (select, insert, update, delete, begin, commit);
// and the CPU of every PostgreSQL process. (pg_stat_database's counters
// reach the view up to 10 s late, as each backend flushes them.)
type pgStats struct {
	Xid      int64 // the next transaction id
	WALBytes int64 // pg_current_wal_lsn as bytes
	Calls    map[string]int64
	Rows     map[string]int64
	CPU      float64
}

func (p *pgEngine) sample(ctx context.Context) (pgStats, error) {
	s := pgStats{Calls: map[string]int64{}, Rows: map[string]int64{}}
	var wal float64 // numeric
	err := p.stats.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')`).Scan(&s.Xid, &wal)
	if err != nil {
		return s, fmt.Errorf("PostgreSQL xid and WAL: %w", err)
	}
	s.WALBytes = int64(wal)
	rows, err := p.stats.Query(ctx, `SELECT coalesce(lower(substring(query from '^\s*(\w+)')), '?'), sum(calls)::bigint, sum(rows)::bigint
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) GROUP BY 1`, pgDatabase)
	if err != nil {
		return s, fmt.Errorf("pg_stat_statements: %w", err)
	}
	for rows.Next() {
		var verb string
		var calls, n int64
		if err := rows.Scan(&verb, &calls, &n); err != nil {
			rows.Close()
			return s, err
		}
		s.Calls[verb], s.Rows[verb] = calls, n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, err
	}
	s.CPU = treeCPU(p.pid())
	return s, nil
}

// pgDelta is b - a over secs.
type pgDelta struct {
	Seconds float64
	// Writes is transactions that wrote (took a transaction id); Written
	// the rows inserted, updated and deleted; Updated those updated.
	Writes, Written, Updated int64
	Calls                    map[string]int64
	WALBytes                 int64
	CPU                      float64
}

func diffPG(a, b pgStats, secs float64) pgDelta {
	d := pgDelta{Seconds: secs, Writes: b.Xid - a.Xid, WALBytes: b.WALBytes - a.WALBytes, CPU: b.CPU - a.CPU, Calls: map[string]int64{}}
	for k, v := range b.Calls {
		if n := v - a.Calls[k]; n != 0 {
			d.Calls[k] = n
		}
	}
	for _, k := range []string{"insert", "update", "delete"} {
		d.Written += b.Rows[k] - a.Rows[k]
	}
	d.Updated = b.Rows["update"] - a.Rows["update"]
	return d
}

func (d pgDelta) perSecond(n int64) float64 {
	if d.Seconds <= 0 {
		return 0
	}
	return float64(n) / d.Seconds
}

// statements is "select 12, update 3" in descending order of calls.
func (d pgDelta) statements() string {
	return countsLine(d.Calls)
}
