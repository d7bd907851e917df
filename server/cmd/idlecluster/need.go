package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// binaries are the programs of Debian's packages that idlecluster runs.
type binaries struct {
	redis    string   // redis-server
	postgres []string // directories holding initdb and postgres, newest version first
	nginx    string
}

// missing is a program not found, and the Debian package that has it.
type missing struct{ what, pkg string }

// lookBinaries finds the programs, and says which are missing.
func lookBinaries() (binaries, []missing) {
	var b binaries
	var out []missing
	if path, err := exec.LookPath("redis-server"); err == nil {
		b.redis = path
	} else {
		out = append(out, missing{"redis-server", "redis-server"})
	}
	// Debian keeps the server off PATH, one directory per major version.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return majorVersion(b) - majorVersion(a) })
	if path, err := exec.LookPath("postgres"); err == nil {
		dirs = append(dirs, filepath.Dir(path))
	}
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			b.postgres = append(b.postgres, dir)
		}
	}
	if len(b.postgres) == 0 {
		out = append(out, missing{"PostgreSQL's initdb and postgres (in /usr/lib/postgresql/15/bin)", "postgresql"})
	}
	// /usr/sbin is not on every user's PATH.
	if path, err := exec.LookPath("nginx"); err == nil {
		b.nginx = path
	} else if isExecutable("/usr/sbin/nginx") {
		b.nginx = "/usr/sbin/nginx"
	} else {
		out = append(out, missing{"nginx", "nginx"})
	}
	return b, out
}

// majorVersion is the number in /usr/lib/postgresql/<number>/bin, 0 if none.
func majorVersion(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// postgresFor is the directory of the server that made data, or of the
// newest one if data is not made yet: a server of another major version
// cannot open it.
func (b binaries) postgresFor(data string) (string, error) {
	v, err := os.ReadFile(filepath.Join(data, "PG_VERSION"))
	if err != nil {
		return b.postgres[0], nil
	}
	want := strings.TrimSpace(string(v))
	for _, dir := range b.postgres {
		if strconv.Itoa(majorVersion(dir)) == want {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%s was made by PostgreSQL %s, which is not installed: apt-get install -y postgresql-%s, or remove %s to start afresh",
		data, want, want, filepath.Dir(data))
}

// ensureBinaries finds the programs; as root it installs the missing ones
// with apt-get (as make chromium does), otherwise it stops with the command
// that does.
func ensureBinaries(ctx context.Context, con *console) (binaries, error) {
	b, miss := lookBinaries()
	if len(miss) == 0 {
		return b, nil
	}
	var whats, pkgs []string
	for _, m := range miss {
		whats = append(whats, m.what)
		pkgs = append(pkgs, m.pkg)
	}
	install := "apt-get install -y " + strings.Join(pkgs, " ")
	if os.Geteuid() != 0 {
		return b, fmt.Errorf("missing %s: run  sudo %s", strings.Join(whats, ", "), install)
	}
	con.printf("missing %s: %s", strings.Join(whats, ", "), install)
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = con.writer("apt-get"), con.writer("apt-get")
		if err := cmd.Run(); err != nil {
			return b, fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
		}
	}
	if b, miss = lookBinaries(); len(miss) > 0 {
		return b, fmt.Errorf("still missing %s after %s", miss[0].what, install)
	}
	return b, nil
}

// checkPorts fails, naming them, if any of the cluster's ports is taken.
func checkPorts(cfg config) error {
	ports := []int{cfg.port}
	for i := range nodes {
		ports = append(ports, nodePort(cfg, i))
	}
	ports = append(ports, cfg.redisPort, cfg.postgresPort)
	var busy []string
	for _, p := range ports {
		l, err := net.Listen("tcp", addr(p))
		if err != nil {
			busy = append(busy, strconv.Itoa(p))
			continue
		}
		l.Close()
	}
	if len(busy) > 0 {
		return fmt.Errorf("127.0.0.1:%s taken: stop what listens there (make run is on 8080; ss -ltnp names it), or choose other ports with -port, -redis-port and -postgres-port",
			strings.Join(busy, ", 127.0.0.1:"))
	}
	return nil
}
