package main

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
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cluster table's shared engines, from Debian's packages as make
// run-cluster runs them (server/cmd/idlecluster): one redis-server and one
// PostgreSQL, on free loopback ports in the run's temp dir, and what the
// table reads of them (INFO; transaction ids, the WAL position and
// pg_stat_statements).

// engine is a redis-server or postgres process.
type engine struct {
	name   string
	cmd    *exec.Cmd
	stopBy syscall.Signal
	exited chan struct{}
}

func (e *engine) pid() int { return e.cmd.Process.Pid }

func startEngine(name string, cmd *exec.Cmd, logPath string, stopBy syscall.Signal, cred *syscall.Credential) (*engine, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: should the run die, so do they.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	e := &engine{name: name, cmd: cmd, stopBy: stopBy, exited: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(e.exited) }()
	return e, nil
}

// stop asks the engine to stop, then kills it if it lingers.
func (e *engine) stop() {
	if e == nil {
		return
	}
	e.cmd.Process.Signal(e.stopBy)
	select {
	case <-e.exited:
	case <-time.After(15 * time.Second):
		e.cmd.Process.Kill()
		<-e.exited
	}
}

// waitFor polls probe until it succeeds, the engine exits or limit passes.
func (e *engine) waitFor(ctx context.Context, limit time.Duration, probe func(context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-e.exited:
			return fmt.Errorf("%s exited at start: see its log", e.name)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer in %v: %w", e.name, limit, err)
		}
	}
}

// redisEngine is redis-server with nothing on disk, and a client for INFO.
type redisEngine struct {
	*engine
	url string
	rc  *redis.Client
}

func startRedis(ctx context.Context, dir string) (*redisEngine, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is missing: apt-get install -y redis-server (make redis does it as root)")
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--dir", rdir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "notice")
	e, err := startEngine("redis-server", cmd, filepath.Join(dir, "redis.log"), syscall.SIGTERM, nil)
	if err != nil {
		return nil, err
	}
	r := &redisEngine{engine: e, url: "redis://" + addr + "/0",
		rc: redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})}
	if err := e.waitFor(ctx, 30*time.Second, func(ctx context.Context) error { return r.rc.Ping(ctx).Err() }); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

func (r *redisEngine) stop() {
	if r == nil {
		return
	}
	r.rc.Close()
	r.engine.stop()
}

// redisInfo is what the table reads of INFO: every command's calls, CPU
// and memory.
type redisInfo struct {
	Calls     map[string]int64 // by command, lower case, from commandstats
	CPU       float64          // used_cpu_sys + used_cpu_user, s
	Memory    int64            // used_memory, bytes
	Processed int64            // total_commands_processed (scripts' own calls not counted)
}

func (r *redisEngine) info(ctx context.Context) (redisInfo, error) {
	s, err := r.rc.Info(ctx, "commandstats", "cpu", "memory", "stats").Result()
	if err != nil {
		return redisInfo{}, err
	}
	in := redisInfo{Calls: map[string]int64{}}
	var sys, usr float64
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(k, "cmdstat_"):
			// cmdstat_evalsha:calls=12,usec=...
			for _, f := range strings.Split(v, ",") {
				if n, ok := strings.CutPrefix(f, "calls="); ok {
					c, _ := strconv.ParseInt(n, 10, 64)
					in.Calls[strings.ToLower(strings.TrimPrefix(k, "cmdstat_"))] = c
				}
			}
		case k == "used_cpu_sys":
			sys, _ = strconv.ParseFloat(v, 64)
		case k == "used_cpu_user":
			usr, _ = strconv.ParseFloat(v, 64)
		case k == "used_memory":
			in.Memory, _ = strconv.ParseInt(v, 10, 64)
		case k == "total_commands_processed":
			in.Processed, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	in.CPU = sys + usr
	return in, nil
}

// scriptCommands are what the live layer's scripts call inside Redis:
// counted by commandstats, but not sent by any node.
var scriptCommands = map[string]bool{"time": true, "hmget": true, "hset": true, "pexpire": true, "hget": true}

// redisDelta is b - a: the commands the nodes sent (the harness's own INFO
// left out), those the scripts ran inside Redis, and CPU.
type redisDelta struct {
	Sent, Scripts int64
	ByCommand     map[string]int64
	CPU           float64
	Seconds       float64
}

func diffRedis(a, b redisInfo, secs float64) redisDelta {
	d := redisDelta{ByCommand: map[string]int64{}, CPU: b.CPU - a.CPU, Seconds: secs}
	for k, v := range b.Calls {
		n := v - a.Calls[k]
		if n == 0 || k == "info" {
			continue
		}
		d.ByCommand[k] = n
		if scriptCommands[k] {
			d.Scripts += n
		} else {
			d.Sent += n
		}
	}
	return d
}

// byCommand is "evalsha 12, spublish 3" in descending order of calls.
func (d redisDelta) byCommand() string { return countsLine(d.ByCommand) }

// countsLine is "a 12, b 3": the counts in descending order.
func countsLine(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return int(m[b] - m[a])
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// treeCPU is the CPU time of pid and of its children (PostgreSQL's
// backends and workers), from /proc.
func treeCPU(pid int) float64 {
	// The postmaster's own, and what its exited children used (cutime,
	// cstime): a backend that ends takes its CPU time with it otherwise.
	total := reapedCPU(pid)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if parentOf(child) == pid {
			c, _ := cpuSeconds(child)
			total += c
		}
	}
	return total
}

// reapedCPU is utime + stime + cutime + cstime of pid.
func reapedCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0
	}
	var sum int64
	for _, k := range []int{11, 12, 13, 14} {
		n, _ := strconv.ParseInt(f[k], 10, 64)
		sum += n
	}
	return float64(sum) / clockTicks
}

// parentOf is the ppid field of /proc/<pid>/stat, 0 if unreadable.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
