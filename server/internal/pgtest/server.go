package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// startWait bounds how long a server may take to accept connections.
	startWait = 30 * time.Second
	// stopWait bounds how long a fast shutdown may take before the server
	// is killed.
	stopWait = 30 * time.Second
	// portTries is how many free ports start tries: another process may
	// take the one it picked before the server binds it.
	portTries = 3
)

// start makes a new cluster in a temp dir and starts a server on it.
// PostgreSQL refuses to run as root, so as root both initdb and the
// server run as the postgres user (which Debian's package makes), in a
// directory it owns.
func start(binDir func() (string, error)) (*instance, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir(): that is under a directory only this user may enter,
	// and it is removed per test, not per package.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	inst, err := startIn(dir, bin, cred)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return inst, nil
}

// serverCredential is who initdb and the server run as: nil (this
// process's user) unless that is root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("start: PostgreSQL will not run as root, and there is no postgres user to run it as (Debian's postgresql package makes one): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("start: user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func startIn(dir, bin string, cred *syscall.Credential) (*instance, error) {
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	// --no-sync and the server's fsync=off: a test's data need not survive
	// a power cut, and syncing is most of what initdb and commits cost.
	// --no-locale: the C collation, as the store's columns declare anyway.
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", User,
		"--no-sync", "--no-locale", "--encoding=UTF8")
	initdb.Dir = dir
	initdb.SysProcAttr = procAttr(cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start: %s: %v\n%s", initdb, err, out)
	}
	var errs []error
	for range portTries {
		inst, err := run(dir, bin, cred)
		if err == nil {
			return inst, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// errPortTaken is a server that exited because its port was taken.
var errPortTaken = errors.New("port taken")

// run starts the server on a free port and waits until it accepts
// connections.
func run(dir, bin string, cred *syscall.Credential) (*instance, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	logPath := filepath.Join(dir, fmt.Sprintf("postgres-%d.log", port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer logFile.Close() // the server has its own copy
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		// Parallel tests each hold a pool of a few connections.
		"-c", "max_connections=200")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = procAttr(cred)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start: %s: %w", cmd, err)
	}
	inst := &instance{dir: dir, port: port, cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(inst.exited)
	}()
	admin, err := inst.waitReady()
	if err != nil {
		inst.kill()
		log, _ := os.ReadFile(logPath)
		if bytes.Contains(log, []byte("could not bind")) {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, fmt.Errorf("start: %s: %w\n%s", cmd, err, log)
	}
	inst.admin = admin
	var version int
	if err := admin.QueryRow(context.Background(), `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		inst.stop()
		return nil, fmt.Errorf("start: server version: %w", err)
	}
	if version >= 150000 {
		inst.createStrategy = " STRATEGY FILE_COPY"
	}
	return inst, nil
}

// waitReady polls the server until it answers, it exits, or startWait
// has passed, and returns a pool on its postgres database.
func (in *instance) waitReady() (*pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()
	for {
		pool, err := pgxpool.New(ctx, in.url("postgres"))
		if err == nil {
			if err = pool.Ping(ctx); err == nil {
				return pool, nil
			}
			pool.Close()
		}
		select {
		case <-in.exited:
			return nil, fmt.Errorf("the server exited (%v)", in.cmd.ProcessState)
		case <-ctx.Done():
			return nil, fmt.Errorf("no answer in %v: %w", startWait, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts the server down fast (SIGINT: connections are ended, no
// waiting for clients), kills it if that takes over stopWait, and removes
// its directory.
func (in *instance) stop() error {
	if in.admin != nil {
		in.admin.Close()
	}
	var err error
	if serr := in.cmd.Process.Signal(syscall.SIGINT); serr != nil && !errors.Is(serr, os.ErrProcessDone) {
		err = fmt.Errorf("stop: %w", serr)
	}
	select {
	case <-in.exited:
	case <-time.After(stopWait):
		err = errors.Join(err, fmt.Errorf("stop: no fast shutdown in %v: killed", stopWait))
		in.kill()
	}
	return errors.Join(err, os.RemoveAll(in.dir))
}

// kill ends the server at once and waits for it.
func (in *instance) kill() {
	in.cmd.Process.Kill()
	<-in.exited
}

// freePort is a loopback TCP port nothing listens on, for now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
