package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

const (
	// pgUser is the superuser initdb makes, trusted on loopback: a demo's
	// database, reachable from this machine only.
	pgUser = "idleguard"
	// pgDatabase is the nodes' database, made if missing.
	pgDatabase = "idleguard"
)

// startPostgres runs PostgreSQL on dir/pg/data, made by initdb on the first
// run. PostgreSQL will not run as root: as root both initdb and the server
// run as the postgres user (which Debian's package makes), in a directory
// it owns.
func (c *cluster) startPostgres(ctx context.Context) error {
	dir := filepath.Join(c.cfg.dir, "pg")
	data := filepath.Join(dir, "data")
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
		if err := reachable(c.con, dir, "postgres", cred); err != nil {
			return err
		}
	}
	bin, err := c.bins.postgresFor(data)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		c.con.printf("first run: initdb %s", data)
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", pgUser,
			"--no-locale", "--encoding=UTF8")
		initdb.Dir = dir
		initdb.Stdout, initdb.Stderr = c.con.writer("initdb"), c.con.writer("initdb")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if err := initdb.Run(); err != nil {
			return fmt.Errorf("initdb: %w (see its lines above)", err)
		}
	}
	// TCP on loopback only, no Unix socket: nothing here needs one, and
	// its directory would have to be the postgres user's too.
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-p", strconv.Itoa(c.cfg.postgresPort), "-k", "", "-c", "listen_addresses=127.0.0.1")
	cmd.Dir = dir
	// SIGINT is PostgreSQL's fast shutdown (clients are disconnected, no
	// waiting for them); SIGQUIT its immediate one, should idlecluster die.
	ch, err := startChild(c.con, "postgres", cmd, syscall.SIGINT, syscall.SIGQUIT, cred)
	if err != nil {
		return err
	}
	c.add(ch)
	var conn *pgx.Conn
	err = c.ready(ctx, "PostgreSQL", func(ctx context.Context) error {
		var err error
		conn, err = pgx.Connect(ctx, c.postgresURL("postgres"))
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, pgDatabase).Scan(&exists); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{pgDatabase}.Sanitize()); err != nil {
			return fmt.Errorf("PostgreSQL: create database %s: %w", pgDatabase, err)
		}
		c.con.printf("created database %s", pgDatabase)
	}
	c.con.printf("PostgreSQL is ready on %s", c.postgresURL(pgDatabase))
	return nil
}

// serverCredential is who initdb and the server run as: nil (this
// process's user) unless that is root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	cred, err := credentialOf("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL will not run as root, and there is no postgres user to run it as (Debian's postgresql package makes one): %w", err)
	}
	return cred, nil
}

// credentialOf is the user name's ids.
func credentialOf(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// reachable makes sure cred's user, who, can pass through every directory
// above dir. A directory under the working directory that it cannot (./data
// is 0700: make run keeps it so) gets search permission for group and
// others (chmod 711: passing through, not listing); one elsewhere is an
// error.
func reachable(con *console, dir, who string, cred *syscall.Credential) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !searchable(fi, cred) {
			rel, err := filepath.Rel(wd, p)
			if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return fmt.Errorf("user %s cannot pass through %s (mode %#o) to %s: choose a -dir it can reach", who, p, fi.Mode().Perm(), dir)
			}
			mode := fi.Mode().Perm() | 0o011
			if err := os.Chmod(p, mode); err != nil {
				return err
			}
			con.printf("chmod %o %s: user %s must pass through it to %s", mode, rel, who, dir)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// searchable reports whether cred's user may pass through directory fi.
func searchable(fi fs.FileInfo, cred *syscall.Credential) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true // cannot tell: let PostgreSQL say
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == cred.Uid:
		return perm&0o100 != 0
	case st.Gid == cred.Gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
