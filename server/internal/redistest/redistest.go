// Package redistest is test support: a real redis-server (Debian's
// redis-server package) on a free loopback port in a temp dir, with no
// persistence, that a test can stop, restart on the same port, or freeze
// for a while; and a three-shard Redis Cluster of such servers.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SkipEnv is the variable that, set to 1, turns a missing redis-server into
// a skip instead of a failure.
const SkipEnv = "IDLEGUARD_SKIP_REDIS"

// startWait bounds how long a server may take to answer PING.
const startWait = 15 * time.Second

// Server is one redis-server process owned by a test.
type Server struct {
	Port int
	Dir  string

	tb       testing.TB
	cluster  bool
	sentinel bool // runs sentinel.conf in Dir with --sentinel
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	frozen   bool
}

// need fails or skips tb when redis-server or redis-cli is missing.
func need(tb testing.TB) {
	tb.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv(SkipEnv) == "1" {
				tb.Skipf("%s is missing and %s=1: skipping", bin, SkipEnv)
			}
			tb.Fatalf("%s is missing: run  sudo apt-get install -y redis-server  (make redis does it when root), or set %s=1 to skip the tests that need it", bin, SkipEnv)
		}
	}
}

// Start starts a redis-server on a free port in a temp dir; the test's
// cleanup stops it.
func Start(tb testing.TB) *Server {
	tb.Helper()
	need(tb)
	s := &Server{Port: freePort(tb, false), Dir: tb.TempDir(), tb: tb}
	s.start()
	tb.Cleanup(s.stop)
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the server as a go-redis URL, database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// start runs redis-server and waits until it answers PING.
func (s *Server) start() {
	tb := s.tb
	tb.Helper()
	args := []string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--logfile", "redis.log", "--loglevel", "notice",
	}
	if s.cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000")
	}
	if s.sentinel {
		args = []string{"sentinel.conf", "--sentinel"}
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = s.Dir
	// If the test binary dies, so does the server: no redis-server is left
	// behind on the machine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("redistest: start redis-server: %v", err)
	}
	s.cmd, s.exited, s.frozen = cmd, make(chan struct{}), false
	go func(exited chan struct{}) { // owned by s: ends when the process does
		_ = cmd.Wait()
		close(exited)
	}(s.exited)

	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(startWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.exited:
			tb.Fatalf("redistest: redis-server on port %d exited at start: %v\n%s", s.Port, cmd.ProcessState, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: redis-server on port %d did not answer PING within %v: %v\n%s", s.Port, startWait, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the process (thawing it first, so SIGTERM is seen) and waits.
func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		if s.frozen {
			_ = s.cmd.Process.Signal(syscall.SIGCONT)
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	s.cmd = nil
}

// Stop stops the server; what it held is gone (no persistence).
func (s *Server) Stop() {
	s.tb.Helper()
	s.stop()
}

// Restart stops the server and starts a new one on the same port and dir:
// every connection drops, and every key and cached script is lost.
func (s *Server) Restart() {
	s.tb.Helper()
	s.stop()
	s.start()
}

// Kill ends the server with SIGKILL, as a crash would; Start brings it back.
func (s *Server) Kill() {
	s.tb.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// StartAgain starts a stopped or killed server on its port.
func (s *Server) StartAgain() {
	s.tb.Helper()
	if s.cmd != nil {
		s.tb.Fatal("redistest: StartAgain on a running server")
	}
	s.start()
}

// Freeze stops the process with SIGSTOP: it keeps its data and its
// connections, but answers nothing (a connect still succeeds, as the kernel
// accepts it), as a Redis cut off from the network would. Thaw ends it.
func (s *Server) Freeze() {
	s.tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.tb.Fatalf("redistest: freeze: %v", err)
	}
	s.frozen = true
}

// Thaw lets a frozen server go on.
func (s *Server) Thaw() {
	s.tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.tb.Fatalf("redistest: thaw: %v", err)
	}
	s.frozen = false
}

// Client is a fresh go-redis client of this one server, closed at cleanup.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.tb.Cleanup(func() { _ = c.Close() })
	return c
}

// CommandCalls reads INFO commandstats: calls per command, by lower-case
// name ("evalsha", "spublish"). Commands that scripts call are counted too.
func (s *Server) CommandCalls() map[string]int64 {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		s.tb.Fatalf("redistest: INFO commandstats: %v", err)
	}
	return ParseCommandStats(info)
}

// ParseCommandStats reads the calls of each command from the text of INFO
// commandstats (lines such as cmdstat_get:calls=3,usec=...).
func ParseCommandStats(info string) map[string]int64 {
	calls := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				calls[strings.ToLower(name)] = n
			}
		}
	}
	return calls
}

func (s *Server) logTail() string {
	data, err := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if err != nil {
		return "(no redis.log: " + err.Error() + ")"
	}
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return "redis.log:\n" + string(bytes.TrimSpace(data))
}

// Cluster is a Redis Cluster of three masters, no replicas, each owning a
// third of the slots, as redis-cli --cluster create makes it.
type Cluster struct {
	Servers []*Server
}

// clusterPortMax keeps each node's cluster bus port (its port + 10000)
// within the 65535 ports there are.
const clusterPortMax = 55535

// StartCluster starts three cluster-enabled servers on free ports (55535 or
// lower), joins them with redis-cli --cluster create, and waits until every
// node sees the cluster ok.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	need(tb)
	c := &Cluster{}
	var addrs []string
	for range 3 {
		s := &Server{Port: freePort(tb, true), Dir: tb.TempDir(), tb: tb, cluster: true}
		s.start()
		tb.Cleanup(s.stop)
		c.Servers = append(c.Servers, s)
		addrs = append(addrs, s.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(startWait)
	for _, s := range c.Servers {
		cl := s.Client()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err := cl.ClusterInfo(ctx).Result()
			cancel()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: the cluster is not ok on port %d within %v: %v\n%s", s.Port, startWait, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// URL is the cluster as a go-redis URL: the first node, the others as addr
// options.
func (c *Cluster) URL() string {
	u := "redis+cluster://" + c.Servers[0].Addr()
	for i, s := range c.Servers[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + s.Addr()
	}
	return u
}

// CommandCalls adds up every node's INFO commandstats.
func (c *Cluster) CommandCalls() map[string]int64 {
	sum := map[string]int64{}
	for _, s := range c.Servers {
		for k, v := range s.CommandCalls() {
			sum[k] += v
		}
	}
	return sum
}

// Sentinel is one redis-server in Sentinel mode watching a master, as
// master name Master. Its process is a Server: Stop, Kill and the rest
// work on it.
type Sentinel struct {
	*Server
	Master string
}

// StartSentinel starts a Sentinel (redis-server --sentinel) that monitors
// master, and waits until it names master's address.
func StartSentinel(tb testing.TB, master *Server) *Sentinel {
	tb.Helper()
	need(tb)
	s := &Sentinel{Server: &Server{Port: freePort(tb, false), Dir: tb.TempDir(), tb: tb}, Master: "idleguard"}
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile redis.log\nsentinel monitor %s 127.0.0.1 %d 1\n",
		s.Port, s.Dir, s.Master, master.Port)
	// Sentinel rewrites its config file, so it is the test's own copy.
	if err := os.WriteFile(filepath.Join(s.Dir, "sentinel.conf"), []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.sentinel = true
	s.start()
	tb.Cleanup(s.stop)
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer sc.Close()
	deadline := time.Now().Add(startWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := sc.GetMasterAddrByName(ctx, s.Master).Result()
		cancel()
		if err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(master.Port) {
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: the sentinel on port %d does not name master %s within %v: %v %v\n%s", s.Port, s.Master, startWait, addr, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the Sentinel as a go-redis URL of the master it watches.
func (s *Sentinel) URL() string {
	return "redis+sentinel://" + s.Addr() + "/0?master_name=" + s.Master
}

// freePort finds a loopback port nobody listens on; for a cluster node,
// one whose bus port (+10000, so at most clusterPortMax) is free too.
// Ports are drawn at random below Linux's default ephemeral range (32768
// and up), which the kernel hands out for outgoing connections and :0, so
// a port just found is unlikely to be taken before the server binds it.
func freePort(tb testing.TB, cluster bool) int {
	tb.Helper()
	const low, high = 20000, 32768
	for range 1000 {
		p := low + rand.IntN(high-low)
		if cluster && p > clusterPortMax {
			continue
		}
		if portFree(p) && (!cluster || portFree(p+10000)) {
			return p
		}
	}
	tb.Fatal("redistest: no free port found")
	return 0
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// String names the server in messages.
func (s *Server) String() string { return fmt.Sprintf("redis-server %s", s.Addr()) }
