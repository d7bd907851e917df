package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The domains table (issue 9, Scale): one server with -domain-suffix
// .localhost holding cfg.domains shops of two sessions each and one chain
// of 20,000 sessions. Sockets are open on both sessions of the target shop
// and of thousands of other shops, and on half the chain's sessions. The
// target's administrator changes its Expiration Time, alternating two
// values, and so does the chain's, taking turns. Each change is timed from
// the start of the PUT to the last of the domain's sockets hearing the new
// state, and every socket that received any frame in the window from just
// before the PUT to domainWindow after it is counted: a change in one shop
// must reach its own two sockets and nothing else.

const (
	// domainWindow is how long after a change frames are counted; the
	// chain's fan-out is over in well under a second.
	domainWindow = 2 * time.Second
	// shopSocketsMax is how many sockets the other shops hold (both
	// sessions of 4,000 of them) and chainSocketsMax the chain: 18,002 with
	// the target's, under the 20,000 open files a process may have here.
	shopSocketsMax  = 8000
	chainSocketsMax = 10000
)

// changeValues are the Expiration Times the changes alternate between:
// long enough that no warning falls within the run.
var changeValues = [2]int64{7200, 14400}

type domainsResult struct {
	Shops        int // small domains, two sessions each
	Sessions     int // in the store, every domain's
	Served       int // domains the server serves, from /debug/stats
	LiveSessions int // on its idle clock
	Clients      int
	Held         int // sockets open when the changes began
	OtherSockets int // planned on shops other than the target
	OpenFiles    int // the server's limit
	WindowMs     float64
	// SeedSeconds is writing the store (one transaction per domain, group,
	// user and session), StartSeconds the server's start on it (every
	// domain's setting and every live session loaded), ConnectSeconds
	// opening the sockets.
	SeedSeconds, StartSeconds, ConnectSeconds float64
	Target, Chain                             domainSide
}

// domainSide is one of the two domains whose setting changes.
type domainSide struct {
	Domain   string
	Sessions int // its live sessions: the tills' and the administrator's own
	Sockets  int // its open sockets
	Changes  []domainChange
	// Over the changes: ms from the PUT until the last of the domain's
	// sockets had the new state, until half of them had it, until the
	// server wrote its last frame, and until the PUT was answered.
	Fanout, Half, Written, Put dist
	// Touched is the fewest and most sockets that received a frame in a
	// change's window, Frames the fewest and most frames they received;
	// Outside and Missing add up over the changes.
	Touched          [2]int
	Frames           [2]int64
	Outside, Missing int
	CPUPerChange     float64 // server CPU s in a window, mean
}

// domainChange is one setting change.
type domainChange struct {
	Expiration int64
	PutMs      float64 // until the PUT was answered
	FanoutMs   float64 // until the last of the domain's sockets had the new state
	HalfMs     float64 // until half of them had it
	WrittenMs  float64 // until the server wrote its last text frame
	Reached    int     // the domain's sockets that had it
	Missing    int     // the domain's sockets that did not
	Touched    int     // sockets that received any frame in the window
	Frames     int64   // frames they received
	Outside    int     // of those, sockets of other domains
	ServerCPU  float64 // server CPU s in the window
	// LiveSessions is what the server's log line for the change says it
	// re-armed: the domain's sessions, never another's.
	LiveSessions int
}

// runDomains is the domains table, on a server and clients of its own
// (the one-domain table's are gone by now).
func runDomains(ctx context.Context, cfg config, env bench) (*domainsResult, error) {
	r := &domainsResult{Shops: cfg.domains, WindowMs: ms(domainWindow)}
	avail := min(cfg.sockets, env.soft-500) - shopSessions
	shopSockets := min(shopSocketsMax, avail/2, (cfg.domains-1)*shopSessions)
	shopSockets -= shopSockets % shopSessions
	chainSockets := max(0, min(chainSocketsMax, chainSessions, avail-shopSockets))

	dir := filepath.Join(env.tmp, "domains")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	logf("domains: writing %d shops of %d sessions and a chain of %d into the store", cfg.domains, shopSessions, chainSessions)
	t0 := time.Now()
	ds, err := prepareDomains(ctx, dir, cfg.domains, shopSockets, chainSockets)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	r.SeedSeconds, r.Sessions = since(t0).Seconds(), ds.sessions
	for _, s := range ds.socks {
		if s.domain != ds.target && s.domain != chainDomain {
			r.OtherSockets++
		}
	}
	logf("domains: store of %d domains and %d sessions in %.1f s", cfg.domains+1, ds.sessions, r.SeedSeconds)

	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	debug, err := freePort()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	host := func(domain string) string { return domain + ".localhost:" + port }
	logPath := filepath.Join(env.tmp, "idleguard-domains.log")
	t0 = time.Now()
	srv, err := startServer("idleguard", cfg.serverEnv, []string{env.bin, "-addr", addr, "-data", dir,
		"-domain-suffix", ".localhost", "-max-tabs", "16", "-debug-addr", debug}, logPath, addr, debug)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	r.StartSeconds = since(t0).Seconds()
	st, err := srv.stats(false)
	if err != nil {
		return nil, err
	}
	r.Served, r.LiveSessions = st.Domains, st.Sessions
	logf("domains: server up in %.1f s serving %d domains, %d live sessions", r.StartSeconds, r.Served, r.LiveSessions)
	if r.OpenFiles, err = openFilesLimit(srv.pid()); err != nil {
		return nil, err
	}
	if len(ds.socks) > r.OpenFiles-500 {
		return nil, fmt.Errorf("%d sockets do not fit the server's open-files limit of %d", len(ds.socks), r.OpenFiles)
	}

	// Clients, each with its share of the sockets, every one opened with
	// its domain's Host and Origin.
	n := len(ds.socks)
	p := max(cfg.clients, (n+env.soft-501)/(env.soft-500))
	r.Clients = p
	plans := make([]plan, p)
	for c := range plans {
		plans[c] = plan{Client: c, IGURL: "ws://" + addr + "/ws"}
	}
	for i, s := range ds.socks {
		c := &plans[i%p]
		c.Sockets = append(c.Sockets, planSocket{I: i, Srv: "ig", Token: s.token, Late: -1, Host: host(s.domain)})
	}
	var clients []*clientProc
	defer func() { stopClients(clients) }()
	for c := range plans {
		path := filepath.Join(env.tmp, fmt.Sprintf("domains-plan%d.json", c))
		b, _ := json.Marshal(plans[c])
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, err
		}
		cp, err := startClient(env.self, c, path, filepath.Join(env.tmp, fmt.Sprintf("domains-client%d.log", c)))
		if err != nil {
			return nil, err
		}
		clients = append(clients, cp)
	}
	logf("domains: connecting %d sockets (the target's %d, %d in %d other shops, %d in the chain) from %d client processes",
		n, shopSessions, r.OtherSockets, r.OtherSockets/shopSessions, chainSockets, p)
	t0 = time.Now()
	reps, err := all(clients, command{Cmd: "connect"})
	if err != nil {
		return nil, err
	}
	ok := 0
	for _, rep := range reps {
		ok += rep.OK["ig"]
		if rep.Failed > 0 {
			logf("client %d: %d sockets failed, first: %s", rep.Client, rep.Failed, rep.Err)
		}
	}
	r.ConnectSeconds = since(t0).Seconds()
	waitSockets(srv, ok, 30*time.Second)
	if err := sleep(ctx, 2*time.Second); err != nil { // every socket's first state frame
		return nil, err
	}
	if st, err = srv.stats(false); err != nil {
		return nil, err
	}
	r.Held = st.Sockets
	logf("domains: %d sockets open in %.1f s", r.Held, r.ConnectSeconds)

	// The administrator's sign-in is a session of the domain as well.
	r.Target = domainSide{Domain: ds.target, Sessions: shopSessions + 1}
	r.Chain = domainSide{Domain: chainDomain, Sessions: chainSessions + 1}
	sides := []*domainSide{&r.Target, &r.Chain}
	tokens := make([]string, len(sides))
	for k, side := range sides {
		for _, s := range ds.socks {
			if s.domain == side.Domain {
				side.Sockets++
			}
		}
		body, _ := json.Marshal(map[string]string{"username": domainAdmin, "password": ds.adminPass})
		b, err := postAs(host(side.Domain), "POST", "http://"+addr+"/api/login", "", "application/json", body)
		if err != nil {
			return nil, fmt.Errorf("%s admin login: %w", side.Domain, err)
		}
		var login struct{ Token string }
		if err := json.Unmarshal(b, &login); err != nil || login.Token == "" {
			return nil, fmt.Errorf("%s admin login: no token in %s", side.Domain, b)
		}
		tokens[k] = login.Token
	}

	// With -profile-dir, one CPU profile of the server over every change.
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		secs := int(time.Duration(cfg.domainChanges*len(sides))*(domainWindow+time.Second)/time.Second) + 1
		srv.saveProfile(cfg.profileDir, fmt.Sprintf("profile?seconds=%d", secs), "idleguard-domains-cpu.pprof")
	}()
	defer func() { <-profiled }()
	for c := range cfg.domainChanges {
		for k, side := range sides {
			ch, err := change(ctx, clients, srv, ds, side.Domain, host(side.Domain), tokens[k], changeValues[c%2])
			if err != nil {
				return nil, err
			}
			side.Changes = append(side.Changes, ch)
			logf("domains: %s expiration_seconds=%d: PUT answered in %.1f ms, last frame written at %.1f ms, its %d sockets had it in %.1f ms (%d missing); %d sockets received a frame, %d outside %s",
				side.Domain, ch.Expiration, ch.PutMs, ch.WrittenMs, side.Sockets, ch.FanoutMs, ch.Missing, ch.Touched, ch.Outside, side.Domain)
		}
	}
	if err := readChangeLog(logPath, sides); err != nil {
		return nil, err
	}
	for _, side := range sides {
		side.summarize()
	}
	return r, nil
}

// change sets domain's Expiration Time to seconds as its administrator and
// judges what the sockets heard in the window from just before the PUT.
func change(ctx context.Context, clients []*clientProc, srv *server, ds *domainsData, domain, host, token string, seconds int64) (domainChange, error) {
	ch := domainChange{Expiration: seconds}
	if _, err := all(clients, command{Cmd: "touched"}); err != nil { // count afresh from here
		return ch, err
	}
	body, _ := json.Marshal(map[string]int64{"expiration_seconds": seconds})
	cpu0 := cpuOf(srv)
	at := time.Now()
	if _, err := postAs(host, "PUT", "http://"+srv.addr+"/api/settings/jwt", token, "application/json", body); err != nil {
		return ch, err
	}
	ch.PutMs = ms(time.Since(at))
	if err := sleep(ctx, time.Until(at.Add(domainWindow))); err != nil {
		return ch, err
	}
	ch.ServerCPU = cpuOf(srv) - cpu0
	ch.WrittenMs = lastWriteAfter(srv, at)
	reps, err := all(clients, command{Cmd: "touched"})
	if err != nil {
		return ch, err
	}
	var lat []float64
	for _, rep := range reps {
		for _, s := range rep.Sockets {
			ch.Touched++
			ch.Frames += s.Frames
			switch {
			case ds.socks[s.I].domain != domain:
				ch.Outside++
			case s.StateExp == seconds:
				lat = append(lat, ms(time.Unix(0, s.StateAt).Sub(at)))
			}
		}
	}
	for _, s := range ds.socks {
		if s.domain == domain {
			ch.Missing++
		}
	}
	ch.Reached = len(lat)
	ch.Missing -= ch.Reached
	if d := newDist(lat); d.N > 0 {
		ch.FanoutMs, ch.HalfMs = d.Max, d.P50
	}
	return ch, sleep(ctx, 300*time.Millisecond)
}

// readChangeLog takes from the server's log how many sessions each change
// re-armed: its "expiration time changed" lines, in order, name the domain
// and live_sessions.
func readChangeLog(path string, sides []*domainSide) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	next := map[string]int{} // the domain's next change to match
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="expiration time changed"`) {
			continue
		}
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = v
			}
		}
		for _, side := range sides {
			if fields["domain"] != side.Domain || next[side.Domain] >= len(side.Changes) {
				continue
			}
			ch := &side.Changes[next[side.Domain]]
			if fmt.Sprint(ch.Expiration) != fields["new"] {
				return fmt.Errorf("server log: change %d of %s set %s, want %d", next[side.Domain]+1, side.Domain, fields["new"], ch.Expiration)
			}
			ch.LiveSessions, _ = strconv.Atoi(fields["live_sessions"])
			next[side.Domain]++
		}
	}
	return sc.Err()
}

func (s *domainSide) summarize() {
	var fan, half, written, put []float64
	s.Touched, s.Frames = [2]int{-1, 0}, [2]int64{-1, 0}
	for _, ch := range s.Changes {
		fan = append(fan, ch.FanoutMs)
		half = append(half, ch.HalfMs)
		written = append(written, ch.WrittenMs)
		put = append(put, ch.PutMs)
		if s.Touched[0] < 0 || ch.Touched < s.Touched[0] {
			s.Touched[0] = ch.Touched
		}
		s.Touched[1] = max(s.Touched[1], ch.Touched)
		if s.Frames[0] < 0 || ch.Frames < s.Frames[0] {
			s.Frames[0] = ch.Frames
		}
		s.Frames[1] = max(s.Frames[1], ch.Frames)
		s.Outside += ch.Outside
		s.Missing += ch.Missing
		s.CPUPerChange += ch.ServerCPU / float64(len(s.Changes))
	}
	s.Fanout, s.Half, s.Written, s.Put = newDist(fan), newDist(half), newDist(written), newDist(put)
}

// exact reports whether every change reached every socket of the domain
// with one frame and no other socket, and the server re-armed the
// domain's sessions only.
func (s *domainSide) exact() bool {
	for _, ch := range s.Changes {
		if ch.Missing > 0 || ch.Outside > 0 || ch.Touched != s.Sockets || ch.Frames != int64(s.Sockets) || ch.LiveSessions != s.Sessions {
			return false
		}
	}
	return len(s.Changes) > 0
}

// liveSessions is the fewest and most sessions the changes re-armed.
func (s *domainSide) liveSessions() string {
	var v []int
	for _, ch := range s.Changes {
		v = append(v, ch.LiveSessions)
	}
	if len(v) == 0 {
		return "–"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}
