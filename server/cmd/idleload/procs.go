package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"idleguard/server/internal/debugstats"
)

// The run's subprocesses: the two servers and the clients.

// server is a running idleguard or baseline process.
type server struct {
	name    string
	cmd     *exec.Cmd
	addr    string // sockets and the API
	debug   string // /debug/stats and pprof
	exited  chan struct{}
	waitErr error
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func startServer(name string, env, args []string, logPath, addr, debugAddr string) (*server, error) {
	return startServerWithin(60*time.Second, name, env, args, logPath, addr, debugAddr)
}

// startServerWithin is startServer waiting up to limit for the server to
// answer (a cluster node loads every live session first, and asks the
// live layer about each).
func startServerWithin(limit time.Duration, name string, env, args []string, logPath, addr, debugAddr string) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, addr: addr, debug: debugAddr, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	deadline := time.Now().Add(limit)
	for {
		if _, err := s.stats(false); err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited at start (%v); see %s", name, s.waitErr, logPath)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not come up in %v; see %s", name, limit, logPath)
		}
	}
}

// stop asks the server to shut down, then kills it if it lingers.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// serverStats is /debug/stats of either server.
type serverStats = debugstats.Stats

var httpc = &http.Client{Timeout: 60 * time.Second}

func (s *server) stats(gc bool) (serverStats, error) {
	u := "http://" + s.debug + "/debug/stats"
	if gc {
		u += "?gc=1"
	}
	var st serverStats
	resp, err := httpc.Get(u)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// sample is what a server looks like at one moment.
type sample struct {
	At    time.Time
	RSS   int64
	CPU   float64
	Stats serverStats
}

func (s *server) sample(gc bool) (sample, error) {
	st, err := s.stats(gc)
	if err != nil {
		return sample{}, err
	}
	rss, err := rssBytes(s.pid())
	if err != nil {
		return sample{}, err
	}
	cpu, err := cpuSeconds(s.pid())
	return sample{At: time.Now(), RSS: rss, CPU: cpu, Stats: st}, err
}

// saveProfile fetches a pprof profile (heap, goroutine, profile?seconds=N).
func (s *server) saveProfile(dir, what, file string) error {
	if dir == "" {
		return nil
	}
	resp, err := httpc.Get("http://" + s.debug + "/debug/pprof/" + what)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(dir + "/" + file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// freePort finds a port on 127.0.0.1 nobody listens on now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// clientProc is one `idleload client`.
type clientProc struct {
	n   int
	cmd *exec.Cmd
	in  *json.Encoder
	out *bufio.Scanner
}

func startClient(self string, n int, planPath, logPath string) (*clientProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "client", "-plan", planPath)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { cmd.Wait(); logf.Close() }()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &clientProc{n: n, cmd: cmd, in: json.NewEncoder(stdin), out: sc}, nil
}

func (c *clientProc) do(cmd command) (reply, error) {
	if err := c.in.Encode(cmd); err != nil {
		return reply{}, fmt.Errorf("client %d: %w", c.n, err)
	}
	if !c.out.Scan() {
		err := c.out.Err()
		if err == nil {
			err = errors.New("exited")
		}
		return reply{}, fmt.Errorf("client %d: %s: %w", c.n, cmd.Cmd, err)
	}
	var r reply
	if err := json.Unmarshal(c.out.Bytes(), &r); err != nil {
		return reply{}, fmt.Errorf("client %d: %w", c.n, err)
	}
	return r, nil
}

// all runs cmd on every client at once and returns their replies.
func all(clients []*clientProc, cmd command) ([]reply, error) {
	type res struct {
		r   reply
		err error
	}
	ch := make(chan res, len(clients))
	for _, c := range clients {
		go func() {
			r, err := c.do(cmd)
			ch <- res{r, err}
		}()
	}
	var out []reply
	var errs []error
	for range clients {
		x := <-ch
		out = append(out, x.r)
		errs = append(errs, x.err)
	}
	return out, errors.Join(errs...)
}

// post sends a request and wants a 2xx.
func post(method, url, bearer, contentType string, body []byte) ([]byte, error) {
	return postAs("", method, url, bearer, contentType, body)
}

// postAs is post with host as the request's Host and Origin, as a page of
// that domain sends it (the URL still names the address to dial).
func postAs(host, method, url, bearer, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if host != "" {
		req.Host = host
		req.Header.Set("Origin", "http://"+host)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
