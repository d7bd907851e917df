package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestQuickCheck runs the demo as make run-cluster does, on free ports in a
// temp dir, with -quick-check: a sign-in and a socket per node through
// nginx, then everything stopped. It is the demo program's test, not the
// cluster's behaviour (server/app has those).
func TestQuickCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server, PostgreSQL, three nodes and nginx: not under -short")
	}
	if _, miss := lookBinaries(); len(miss) > 0 {
		var whats, pkgs []string
		for _, m := range miss {
			whats, pkgs = append(whats, m.what), append(pkgs, m.pkg)
		}
		t.Skipf("missing %s: sudo apt-get install -y %s (make run-cluster installs them when root)",
			strings.Join(whats, ", "), strings.Join(pkgs, " "))
	}
	// Not t.TempDir(): PostgreSQL and nginx's workers run as other users
	// when this is root, and must pass through it.
	dir, err := os.MkdirTemp("", "idlecluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "idleguard")
	build := exec.Command("go", "build", "-o", bin, "idleguard/server/cmd/idleguard")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// nginx, the nodes, redis, PostgreSQL: in a row.
	port := freePorts(t, nodes+3)
	redisPort, pgPort := port+nodes+1, port+nodes+2
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err = run(ctx, []string{"idlecluster", "-quick-check", "-dir", filepath.Join(dir, "cluster"), "-bin", bin,
		"-port", strconv.Itoa(port), "-redis-port", strconv.Itoa(redisPort), "-postgres-port", strconv.Itoa(pgPort)},
		&out, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	log := out.String()
	for _, want := range []string{"quick check passed", "nginx stopped", "node1 stopped", "postgres stopped", "redis stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q:\n%s", want, log)
		}
	}
	// Stopped in order: nginx, the nodes, PostgreSQL, redis.
	order := []string{"cluster  | nginx stopped", "cluster  | node", "cluster  | postgres stopped", "cluster  | redis stopped"}
	at := 0
	for _, o := range order {
		i := strings.Index(log[at:], o)
		if i < 0 {
			t.Fatalf("%q not after the stops before it:\n%s", o, log)
		}
		at += i
	}
	for _, p := range []int{port, port + 1, port + nodes, redisPort, pgPort} {
		l, err := net.Listen("tcp", addr(p))
		if err != nil {
			t.Errorf("port %d still taken after run returned: %v", p, err)
			continue
		}
		l.Close()
	}
}

// freePorts is the first of n consecutive loopback ports nothing listens on
// (for now).
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		first := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if first+n > 65535 {
			continue
		}
		ok := true
		for p := first; p < first+n && ok; p++ {
			l, err := net.Listen("tcp", addr(p))
			if ok = err == nil; ok {
				l.Close()
			}
		}
		if ok {
			return first
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// syncBuffer is the console the children write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPrefixer: each line whole, led by its writer's name, a partial line
// kept until its end arrives or Flush.
func TestPrefixer(t *testing.T) {
	var buf bytes.Buffer
	con := newConsole(&buf)
	a, b := con.writer("redis"), con.writer("postgres")
	a.Write([]byte("one\ntw"))
	b.Write([]byte("x\n"))
	a.Write([]byte("o\nthree"))
	a.Flush()
	b.Flush()
	want := "redis    | one\npostgres | x\nredis    | two\nredis    | three\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestNginxConfig: what the issue asks of nginx is in the config.
func TestNginxConfig(t *testing.T) {
	c := newCluster(config{port: 8080}, binaries{}, newConsole(&bytes.Buffer{}))
	var conf strings.Builder
	if err := nginxConfig.Execute(&conf, c.nginxData(`/tmp/a "b"`, "www-data")); err != nil {
		t.Fatal(err)
	}
	got := conf.String()
	for _, want := range []string{
		"daemon off;", `user "www-data";`, `pid "/tmp/a \"b\"/nginx.pid";`, "listen 127.0.0.1:8080;",
		"server 127.0.0.1:8081;", "server 127.0.0.1:8082;", "server 127.0.0.1:8083;",
		"proxy_http_version 1.1;", "proxy_set_header Host $http_host;", "proxy_set_header X-Forwarded-Proto $scheme;",
		"proxy_set_header Upgrade $http_upgrade;", `proxy_set_header Connection "upgrade";`, "proxy_read_timeout 1h;",
		`client_body_temp_path "/tmp/a \"b\"/client_body";`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	// Both locations carry the headers: nginx drops the server's when a
	// location sets any.
	if n := strings.Count(got, "proxy_set_header Host $http_host;"); n != 2 {
		t.Errorf("Host header set in %d places, want 2 (each location)", n)
	}
}
