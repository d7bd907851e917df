package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"idleguard/server/protocol"
)

// orchestrate is the whole run: the one-domain table (runMain), then the
// domains table (runDomains), then both printed.
func orchestrate(ctx context.Context, cfg config) (err error) {
	soft, hard, err := ownLimits()
	if err != nil {
		return err
	}
	res := &results{Config: cfg.describe(), Machine: machine(), Rate: cfg.rate}
	res.LoadAvg[0] = loadAvg()
	res.Limits.Self, res.Limits.Hard = int(soft), int(hard)
	logf("open files: soft %d, hard %d (children inherit them)", soft, hard)

	tmp, err := os.MkdirTemp("", "idleload-")
	if err != nil {
		return err
	}
	if cfg.keep {
		logf("temp dir (kept): %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin := cfg.serverBin
	if bin == "" {
		bin = filepath.Join(tmp, "idleguard")
		logf("building the server: go build -o %s ./server/cmd/idleguard", bin)
		b := exec.Command("go", "build", "-o", bin, "./server/cmd/idleguard")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build server (run from the module root): %w", err)
		}
	}
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return err
		}
	}
	env := bench{tmp: tmp, self: self, bin: bin, soft: int(soft)}
	if cfg.cluster {
		if res.Cluster, err = runClusterTable(ctx, cfg, env); err != nil {
			return fmt.Errorf("cluster table: %w", err)
		}
	} else if !cfg.domainsOnly {
		if err := runMain(ctx, cfg, env, res); err != nil {
			return err
		}
	}
	if cfg.domains > 0 && !cfg.cluster {
		if res.Domains, err = runDomains(ctx, cfg, env); err != nil {
			return fmt.Errorf("domains table: %w", err)
		}
	}

	res.LoadAvg[1] = loadAvg()
	res.print(os.Stdout)
	if cfg.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// bench is what the two tables share: the run's temp dir, this program
// (the clients and the baseline are its subcommands), the server binary,
// and the open-files limit every child inherits.
type bench struct {
	tmp, self, bin string
	soft           int
}

// runMain is the one-domain table: prepare, start, connect, settle, soak,
// fan out a setting, sign a group out within one second, push activity,
// close, check for leaks.
func runMain(ctx context.Context, cfg config, env bench, res *results) error {
	tmp, self, bin, soft := env.tmp, env.self, env.bin, env.soft
	n := cfg.sockets
	if lim := soft - 500; n > lim {
		logf("sockets: %d asked, %d fit under the limit less 500 for files and listeners", n, lim)
		n = lim
	}

	// Prepare the store: sessions and tokens without bcrypt.
	late := min(cfg.late, n)
	dataDir := filepath.Join(tmp, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	t0 := time.Now()
	ds, err := prepare(ctx, dataDir, n, late)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	logf("store: %d sessions (%d in the sign-out group) and their tokens in %v", n, late, since(t0))

	// Start both servers.
	var addrs [4]string
	for i := range addrs {
		if addrs[i], err = freePort(); err != nil {
			return err
		}
	}
	ig, err := startServer("idleguard", cfg.serverEnv, []string{bin, "-addr", addrs[0], "-data", dataDir,
		"-min-expiration", "1", "-max-tabs", "16", "-debug-addr", addrs[1]},
		filepath.Join(tmp, "idleguard.log"), addrs[0], addrs[1])
	if err != nil {
		return err
	}
	defer ig.stop()
	echo, err := startServer("echo", nil, []string{self, "echo", "-addr", addrs[2], "-debug-addr", addrs[3]},
		filepath.Join(tmp, "echo.log"), addrs[2], addrs[3])
	if err != nil {
		return err
	}
	defer echo.stop()
	for _, s := range []*server{ig, echo} {
		lim, err := openFilesLimit(s.pid())
		if err != nil {
			return err
		}
		logf("%s: pid %d, open-files limit %d", s.name, s.pid(), lim)
		res.Limits.Servers = append(res.Limits.Servers, lim)
		if n > lim-500 {
			logf("sockets: %d clamped to %d by %s's limit", n, lim-500, s.name)
			n = lim - 500
		}
	}
	res.Sockets, res.Late = n, min(late, n)

	// Clients: each holds its share of both servers' sockets.
	p := cfg.clients
	if need := (2*n + soft - 501) / (soft - 500); p < need {
		p = need
	}
	res.Clients = p

	// The administrator signs in for real (bcrypt).
	loginBody, _ := json.Marshal(map[string]string{"username": ds.adminName, "password": ds.adminPass})
	b, err := post("POST", "http://"+ig.addr+"/api/login", "", "application/json", loginBody)
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	var login struct{ Token string }
	if err := json.Unmarshal(b, &login); err != nil || login.Token == "" {
		return fmt.Errorf("admin login: no token in %s", b)
	}

	// The baseline: after a forced GC (for the leak check), then as it is a
	// second later (for RSS).
	time.Sleep(time.Second)
	if res.IG.BaseGC, res.Echo.BaseGC, err = sampleBoth(ig, echo, true); err != nil {
		return err
	}
	time.Sleep(time.Second)
	if res.IG.Base, res.Echo.Base, err = sampleBoth(ig, echo, false); err != nil {
		return err
	}
	logf("baseline: idleguard %s with %d live sessions, echo %s", mib(res.IG.Base.RSS), res.IG.Base.Stats.Sessions, mib(res.Echo.Base.RSS))

	plans := make([]plan, p)
	for c := range plans {
		plans[c] = plan{Client: c, IGURL: "ws://" + ig.addr + "/ws", EchoURL: "ws://" + echo.addr + "/ws"}
	}
	for i := range n {
		c := &plans[i%p]
		c.Sockets = append(c.Sockets,
			planSocket{I: i, Srv: "ig", Token: ds.tokens[i], Late: ds.late[i]},
			planSocket{I: i, Srv: "echo", Late: ds.late[i]})
	}
	var clients []*clientProc
	defer func() { stopClients(clients) }()
	for c := range plans {
		path := filepath.Join(tmp, fmt.Sprintf("plan%d.json", c))
		b, _ := json.Marshal(plans[c])
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
		cp, err := startClient(self, c, path, filepath.Join(tmp, fmt.Sprintf("client%d.log", c)))
		if err != nil {
			return err
		}
		clients = append(clients, cp)
	}

	// Connect.
	logf("connecting %d + %d sockets from %d client processes over 127.x.y.z", n, n, p)
	t0 = time.Now()
	reps, err := all(clients, command{Cmd: "connect"})
	if err != nil {
		return err
	}
	okIG, okEcho := 0, 0
	for _, r := range reps {
		okIG += r.OK["ig"]
		okEcho += r.OK["echo"]
		if r.Failed > 0 {
			logf("client %d: %d sockets failed, first: %s", r.Client, r.Failed, r.Err)
		}
	}
	res.ConnectSeconds = since(t0).Seconds()
	logf("connected: idleguard %d, echo %d in %.1f s", okIG, okEcho, res.ConnectSeconds)
	waitSockets(ig, okIG, 30*time.Second)
	waitSockets(echo, okEcho, 30*time.Second)

	// Settle, then soak idle.
	if err := sleep(ctx, cfg.settle); err != nil {
		return err
	}
	if res.IG.Settle, res.Echo.Settle, err = sampleBoth(ig, echo, false); err != nil {
		return err
	}
	res.IG.Held, res.Echo.Held = res.IG.Settle.Stats.Sockets, res.Echo.Settle.Stats.Sockets
	logf("settled: idleguard %d sockets, %s RSS; echo %d sockets, %s RSS", res.IG.Held, mib(res.IG.Settle.RSS), res.Echo.Held, mib(res.Echo.Settle.RSS))
	logf("idle soak %v", cfg.soak)
	for left := cfg.soak; left > 0; left -= time.Minute {
		if err := sleep(ctx, min(left, time.Minute)); err != nil {
			return err
		}
		if left > time.Minute {
			s, _ := ig.sample(false)
			e, _ := echo.sample(false)
			logf("  soaking: idleguard %s, echo %s", mib(s.RSS), mib(e.RSS))
		}
	}
	if res.IG.Soaked, res.Echo.Soaked, err = sampleBoth(ig, echo, false); err != nil {
		return err
	}
	res.IG.SoakHeld, res.Echo.SoakHeld = res.IG.Soaked.Stats.Sockets, res.Echo.Soaked.Stats.Sockets
	logf("soaked: idleguard %s, echo %s", mib(res.IG.Soaked.RSS), mib(res.Echo.Soaked.RSS))
	for _, s := range []*server{ig, echo} {
		s.saveProfile(cfg.profileDir, "heap", s.name+"-heap.pprof")
		s.saveProfile(cfg.profileDir, "goroutine", s.name+"-goroutine.pprof")
	}

	// Fan-out and sign-out. The sign-out group's deadlines are last
	// activity (base - lateBack + offset) plus the new Expiration Time, so
	// choosing that time puts them all in the second starting at signOutAt.
	signOutAt := time.Now().Add(38 * time.Second).Truncate(time.Second).Add(time.Second)
	expiration := int64(signOutAt.Sub(ds.base.Add(-lateBack)) / time.Second)
	echoSignOutAt := signOutAt.Add(5 * time.Second)
	frame := protocol.Append(nil, protocol.Message{Kind: protocol.State, RemainingMs: 3600000,
		ExpirationS: expiration, WarnMs: 30000, ReportMs: 5000})
	if _, err := post("POST", fmt.Sprintf("http://%s/schedule?at=%d", echo.addr, echoSignOutAt.UnixMilli()), "", "", nil); err != nil {
		return err
	}
	logf("fan-out: echo broadcast of %q", frame)
	c0, e0 := clientsCPU(clients), cpuOf(echo)
	echoFanoutAt := time.Now()
	if _, err := post("POST", "http://"+echo.addr+"/broadcast", "", "text/plain", frame); err != nil {
		return err
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	res.Echo.FanoutCPU = cpuSplit{Server: cpuOf(echo) - e0, Clients: clientsCPU(clients) - c0}
	res.Echo.FanoutWritten = lastWriteAfter(echo, echoFanoutAt)
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	logf("fan-out: PUT /api/settings/jwt expiration_seconds=%d (sign-out group due in the second from %s)", expiration, signOutAt.Format("15:04:05"))
	body, _ := json.Marshal(map[string]int64{"expiration_seconds": expiration})
	fanoutProfiled := make(chan struct{})
	go func() {
		defer close(fanoutProfiled)
		ig.saveProfile(cfg.profileDir, "profile?seconds=3", "idleguard-fanout-cpu.pprof")
	}()
	time.Sleep(100 * time.Millisecond)
	c0, i0 := clientsCPU(clients), cpuOf(ig)
	igFanoutAt := time.Now()
	if _, err := post("PUT", "http://"+ig.addr+"/api/settings/jwt", login.Token, "application/json", body); err != nil {
		return err
	}
	res.IG.PutMs = ms(since(igFanoutAt))
	if err := sleep(ctx, time.Until(igFanoutAt.Add(2*time.Second))); err != nil {
		return err
	}
	res.IG.FanoutCPU = cpuSplit{Server: cpuOf(ig) - i0, Clients: clientsCPU(clients) - c0}
	res.IG.FanoutWritten = lastWriteAfter(ig, igFanoutAt)
	<-fanoutProfiled
	if err := sleep(ctx, time.Until(signOutAt.Add(-time.Second))); err != nil {
		return err
	}
	ig.saveProfile(cfg.profileDir, "profile?seconds=3", "idleguard-signout-cpu.pprof")
	if err := sleep(ctx, time.Until(echoSignOutAt.Add(4*time.Second))); err != nil {
		return err
	}
	reps, err = all(clients, command{Cmd: "report"})
	if err != nil {
		return err
	}
	res.judgeTiming(reps, ds, igFanoutAt, echoFanoutAt, signOutAt, echoSignOutAt)
	logf("fan-out: idleguard max %.1f ms, echo max %.1f ms", res.IG.Fanout.Max, res.Echo.Fanout.Max)
	logf("sign-out: idleguard p99 %.1f ms (%d early, %d missing), echo p99 %.1f ms",
		res.IG.Late.P99, res.IG.Late.Early, res.IG.Late.Missing, res.Echo.Late.P99)

	// Activity throughput, one server at a time.
	for _, x := range []struct {
		s   *server
		srv string
		r   *serverResult
	}{{echo, "echo", &res.Echo}, {ig, "ig", &res.IG}} {
		if err := throughput(ctx, cfg, clients, x.s, x.srv, x.r); err != nil {
			return err
		}
		logf("activity %s: first frames (token renewals) took %.1f s and %.1f CPU s; best step %.0f frames/s, %.4f CPU s per 1000",
			x.s.name, x.r.Prime.Seconds, x.r.Prime.CPUSeconds, x.r.Activity.PerSecond, x.r.Activity.CPUPer1000)
	}
	reps, err = all(clients, command{Cmd: "report"})
	if err != nil {
		return err
	}
	res.countCloses(reps)

	// Close everything; what is left is a leak.
	logf("closing every socket")
	if err := closeAll(clients, ig, echo); err != nil {
		return err
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	for _, x := range []struct {
		s *server
		r *serverResult
	}{{ig, &res.IG}, {echo, &res.Echo}} {
		if x.r.Closed, err = x.s.sample(false); err != nil {
			return err
		}
		if x.r.ClosedGC, err = x.s.sample(true); err != nil {
			return err
		}
	}

	// A second round of the same sockets: whatever the first left behind
	// (the runtime keeps every goroutine descriptor it ever made; maps
	// keep their size) is there already, so any growth now is a leak.
	logf("leak check: the sockets outside the sign-out group open and close once more")
	if _, err := all(clients, command{Cmd: "connect", SkipLate: true}); err != nil {
		return err
	}
	waitSockets(ig, n-res.Late, 30*time.Second)
	waitSockets(echo, n-res.Late, 30*time.Second)
	if err := closeAll(clients, ig, echo); err != nil {
		return err
	}
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	if res.IG.ClosedGC2, res.Echo.ClosedGC2, err = sampleBoth(ig, echo, true); err != nil {
		return err
	}
	for _, s := range []*server{ig, echo} {
		s.saveProfile(cfg.profileDir, "heap", s.name+"-heap-closed.pprof")
	}
	return nil
}

// stopClients tells every client to exit and kills any that lingers.
func stopClients(clients []*clientProc) {
	for _, c := range clients {
		c.in.Encode(command{Cmd: "exit"})
	}
	for _, c := range clients {
		done := make(chan struct{})
		go func() { c.cmd.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
		}
	}
}

// sampleBoth samples idleguard, then the baseline.
func sampleBoth(ig, echo *server, gc bool) (igS, echoS sample, err error) {
	if igS, err = ig.sample(gc); err != nil {
		return igS, echoS, err
	}
	echoS, err = echo.sample(gc)
	return igS, echoS, err
}

// closeAll has every client close its sockets and waits until neither
// server counts any open.
func closeAll(clients []*clientProc, ig, echo *server) error {
	if _, err := all(clients, command{Cmd: "close"}); err != nil {
		return err
	}
	waitSockets(ig, 0, 30*time.Second)
	waitSockets(echo, 0, 30*time.Second)
	return nil
}

// lastWriteAfter is when, in ms after start, the server wrote its last
// text frame (read once the fan-out is over and before anything else is
// written: the warnings come seconds later).
func lastWriteAfter(s *server, start time.Time) float64 {
	st, err := s.stats(false)
	if err != nil || st.LastWrite == 0 {
		return 0
	}
	return ms(time.Unix(0, st.LastWrite).Sub(start))
}

// clientsCPU is the CPU time every client process has used so far.
func clientsCPU(clients []*clientProc) float64 {
	var sum float64
	for _, c := range clients {
		if s, err := cpuSeconds(c.cmd.Process.Pid); err == nil {
			sum += s
		}
	}
	return sum
}

func cpuOf(s *server) float64 {
	v, _ := cpuSeconds(s.pid())
	return v
}

// waitSockets polls until the server counts want open sockets.
func waitSockets(s *server, want int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if st, err := s.stats(false); err == nil && st.Sockets == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	st, _ := s.stats(false)
	logf("%s: %d sockets open, %d expected, after %v", s.name, st.Sockets, want, limit)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
