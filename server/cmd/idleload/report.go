package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// results is everything a run measured.
type results struct {
	Config  string
	Machine string
	Limits  struct {
		Self, Hard int
		Servers    []int
	}
	Sockets int // asked of each server, after clamping
	Late    int
	Clients int
	Rate    float64
	// LoadAvg is /proc/loadavg at the start and at the end: the machine is
	// shared, and other work skews every figure.
	LoadAvg        [2]string
	ConnectSeconds float64
	IG, Echo       serverResult
	// Domains is the domains table (nil when skipped).
	Domains *domainsResult `json:",omitempty"`
	// Cluster is the cluster table (nil unless -cluster).
	Cluster *clusterResult `json:",omitempty"`
}

type serverResult struct {
	Held, SoakHeld int
	// BaseGC is taken after a forced GC with no socket open; Base, the RSS
	// baseline, a second later.
	BaseGC, Base, Settle, Soaked, Closed, ClosedGC sample
	// ClosedGC2 is after a second round of the same sockets.
	ClosedGC2 sample
	// FanoutCPU is the CPU the server and the clients spent in the two
	// seconds from the setting change: the machine's two CPUs bound how
	// fast 19,000 frames can be written and read over loopback.
	FanoutCPU cpuSplit
	// FanoutWritten is when the server wrote its last frame of the
	// fan-out, in ms from the change.
	FanoutWritten float64
	Fanout        dist
	PutMs         float64
	Late          dist // wall clock: logout arrival - known deadline
	LateRem       dist // client's monotonic clock: logout - (last remaining= frame + remaining)
	Unexpected    int  // sign-outs outside the group
	Prime         prime
	Steps         []activity
	Activity      activity    // the best step the server kept up with
	Closes        map[int]int // close codes received, by code
	Errors        int         // sockets ended without a close frame
}

type cpuSplit struct{ Server, Clients float64 }

type prime struct {
	Seconds, CPUSeconds float64
	Frames              uint64
}

type activity struct {
	Rate       float64 // frames a second per socket asked of the clients
	Dropped    int64   // sockets that ended during the step
	Frames     uint64
	Seconds    float64
	PerSecond  float64
	Offered    float64 // frames/s the clients wrote
	CPUSeconds float64
	CPUPer1000 float64
}

// dist is a latency distribution in ms.
type dist struct {
	N, Early, Missing int
	P50, P99, Max     float64
	Reasons           map[string]int `json:",omitempty"`
}

func newDist(v []float64) dist {
	d := dist{N: len(v)}
	if len(v) == 0 {
		return d
	}
	slices.Sort(v)
	rank := func(p float64) float64 {
		i := int(p*float64(len(v))+0.999999) - 1 // nearest rank
		return v[min(max(i, 0), len(v)-1)]
	}
	d.P50, d.P99, d.Max = rank(0.50), rank(0.99), v[len(v)-1]
	for _, x := range v {
		if x < 0 {
			d.Early++
		}
	}
	return d
}

func (r *results) judgeTiming(reps []reply, ds *dataset, igFanout, echoFanout, igDue, echoDue time.Time) {
	type acc struct {
		fan, late, rem []float64
		fanMissing     int
		lateMissing    int
		unexpected     int
		reasons        map[string]int
	}
	by := map[string]*acc{"ig": {reasons: map[string]int{}}, "echo": {reasons: map[string]int{}}}
	start := map[string]time.Time{"ig": igFanout, "echo": echoFanout}
	due := map[string]time.Time{"ig": igDue, "echo": echoDue}
	for _, rep := range reps {
		for _, s := range rep.Sockets {
			a := by[s.Srv]
			if s.Frames == 0 && s.Code == 0 {
				continue // never connected
			}
			if s.Fanout > 0 {
				a.fan = append(a.fan, ms(time.Unix(0, s.Fanout).Sub(start[s.Srv])))
			} else {
				a.fanMissing++
			}
			if ds.late[s.I] < 0 {
				if s.Logout > 0 {
					a.unexpected++
				}
				continue
			}
			if s.Logout == 0 {
				a.lateMissing++
				continue
			}
			deadline := due[s.Srv].Add(time.Duration(ds.late[s.I]) * time.Millisecond)
			a.late = append(a.late, ms(time.Unix(0, s.Logout).Sub(deadline)))
			a.reasons[s.Reason]++
			if s.HasRem {
				a.rem = append(a.rem, float64(s.RemLate)/1000)
			}
		}
	}
	for srv, out := range map[string]*serverResult{"ig": &r.IG, "echo": &r.Echo} {
		a := by[srv]
		out.Fanout = newDist(a.fan)
		out.Fanout.Missing = a.fanMissing
		out.Late = newDist(a.late)
		out.Late.Missing = a.lateMissing
		out.Late.Reasons = a.reasons
		out.LateRem = newDist(a.rem)
		out.Unexpected = a.unexpected
	}
}

func (r *results) countCloses(reps []reply) {
	r.IG.Closes, r.Echo.Closes = map[int]int{}, map[int]int{}
	for _, rep := range reps {
		for _, s := range rep.Sockets {
			out := &r.IG
			if s.Srv == "echo" {
				out = &r.Echo
			}
			if s.Code != 0 {
				out.Closes[s.Code]++
			} else if s.Err != "" {
				out.Errors++
			}
		}
	}
}

func (c config) describe() string {
	return fmt.Sprintf("-sockets %d -clients %d -late %d -settle %v -soak %v -warm %v -window %v -rate %g -domains %d -domain-changes %d",
		c.sockets, c.clients, c.late, c.settle, c.soak, c.warm, c.window, c.rate, c.domains, c.domainChanges)
}

func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			mem = f[1] + " kB"
		}
	}
	return fmt.Sprintf("%d CPUs (%s), MemTotal %s, Linux %s, %s; somaxconn %s, ip_local_port_range %s",
		runtime.NumCPU(), model, mem, sysctl("kernel/osrelease"), runtime.Version(),
		sysctl("net/core/somaxconn"), sysctl("net/ipv4/ip_local_port_range"))
}

// perSocket is the growth from the baseline divided by the sockets held.
func perSocket(now, base int64, held int) float64 {
	if held == 0 {
		return 0
	}
	return float64(now-base) / float64(held)
}

const kib = 1024

func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\n## idleload: %s\n\nmachine: %s\n", time.Now().Format("2006-01-02 15:04"), r.Machine)
	if r.Sockets > 0 {
		fmt.Fprintf(w, "run: %s; %d client processes; connect took %.1f s\n", r.Config, r.Clients, r.ConnectSeconds)
	}
	fmt.Fprintf(w, "open files: orchestrator soft %d hard %d; servers %v\n", r.Limits.Self, r.Limits.Hard, r.Limits.Servers)
	fmt.Fprintf(w, "load average (1, 5, 15 min) at the start: %s; at the end: %s\n", r.LoadAvg[0], r.LoadAvg[1])
	if r.Sockets > 0 {
		r.printMain(w)
	}
	if r.Domains != nil {
		r.Domains.print(w)
	}
	if r.Cluster != nil {
		r.Cluster.print(w)
	}
}

// printMain is the one-domain table, idleguard beside the echo baseline.
func (r *results) printMain(w io.Writer) {
	ig, ec := &r.IG, &r.Echo
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | idleguard | echo baseline | ratio | budget | |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | --- | --- |")
	row := func(name string, a, b float64, format, budget string, ok *bool) {
		ratio := "–"
		if b != 0 {
			ratio = fmt.Sprintf("%.2f", a/b)
		}
		verdict := ""
		if ok != nil {
			verdict = "met"
			if !*ok {
				verdict = "**missed**"
			}
		}
		fmt.Fprintf(w, "| %s | "+format+" | "+format+" | %s | %s | %s |\n", name, a, b, ratio, budget, verdict)
	}
	text := func(name, a, b, budget string, ok *bool) {
		verdict := ""
		if ok != nil {
			verdict = "met"
			if !*ok {
				verdict = "**missed**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | – | %s | %s |\n", name, a, b, budget, verdict)
	}
	b := func(v bool) *bool { return &v }

	held := min(ig.Held, ig.SoakHeld)
	row("sockets held (settle, after soak: min)", float64(held), float64(min(ec.Held, ec.SoakHeld)), "%.0f",
		"19,000", b(held >= 19000 || (held == r.Sockets && r.Sockets < 19000 && r.Sockets == r.Limits.Servers[0]-500)))
	row("RSS before connecting, MiB", mibf(ig.Base.RSS), mibf(ec.Base.RSS), "%.1f", "", nil)
	settle := perSocket(ig.Settle.RSS, ig.Base.RSS, ig.Held) / kib
	soak := perSocket(ig.Soaked.RSS, ig.Base.RSS, ig.SoakHeld) / kib
	row("RSS per idle socket at settle, KiB", settle, perSocket(ec.Settle.RSS, ec.Base.RSS, ec.Held)/kib, "%.2f", "<= 8", b(settle <= 8))
	row("RSS per idle socket after soak, KiB", soak, perSocket(ec.Soaked.RSS, ec.Base.RSS, ec.SoakHeld)/kib, "%.2f", "<= 8", b(soak <= 8))
	row("  of which Go heap in use, KiB", perSocket(int64(ig.Soaked.Stats.HeapInuse), int64(ig.Base.Stats.HeapInuse), ig.SoakHeld)/kib,
		perSocket(int64(ec.Soaked.Stats.HeapInuse), int64(ec.Base.Stats.HeapInuse), ec.SoakHeld)/kib, "%.2f", "", nil)
	row("  of which goroutine stacks, KiB", perSocket(int64(ig.Soaked.Stats.StackInuse), int64(ig.Base.Stats.StackInuse), ig.SoakHeld)/kib,
		perSocket(int64(ec.Soaked.Stats.StackInuse), int64(ec.Base.Stats.StackInuse), ec.SoakHeld)/kib, "%.2f", "", nil)
	kept := func(st serverStats) int64 { return int64(st.HeapIdle) - int64(st.HeapReleased) }
	row("  of which free heap the runtime keeps, KiB", perSocket(kept(ig.Soaked.Stats), kept(ig.Base.Stats), ig.SoakHeld)/kib,
		perSocket(kept(ec.Soaked.Stats), kept(ec.Base.Stats), ec.SoakHeld)/kib, "%.2f", "", nil)
	row("goroutines per idle socket", perSocket(int64(ig.Soaked.Stats.Goroutines), int64(ig.Base.Stats.Goroutines), ig.SoakHeld),
		perSocket(int64(ec.Soaked.Stats.Goroutines), int64(ec.Base.Stats.Goroutines), ec.SoakHeld), "%.2f", "", nil)

	lateOK := ig.Late.N > 0 && ig.Late.P99 <= 50 && ig.Late.Early == 0 && ig.Late.Missing == 0
	row(fmt.Sprintf("sign-out lateness p50, ms (%d due in one second)", r.Late), ig.Late.P50, ec.Late.P50, "%.1f", "", nil)
	row("sign-out lateness p99, ms", ig.Late.P99, ec.Late.P99, "%.1f", "<= 50", b(lateOK))
	row("sign-out lateness max, ms", ig.Late.Max, ec.Late.Max, "%.1f", "", nil)
	text("sign-outs early / missing / outside the group", fmt.Sprintf("%d / %d / %d", ig.Late.Early, ig.Late.Missing, ig.Unexpected),
		fmt.Sprintf("%d / %d / %d", ec.Late.Early, ec.Late.Missing, ec.Unexpected), "none early", b(ig.Late.Early == 0 && ig.Late.Missing == 0 && ig.Unexpected == 0))
	text("  cross-check on the client's monotonic clock p50/p99/max, ms",
		fmt.Sprintf("%.1f / %.1f / %.1f", ig.LateRem.P50, ig.LateRem.P99, ig.LateRem.Max), "–", "", nil)

	fanOK := ig.Fanout.N > 0 && ig.Fanout.Max <= 250 && ig.Fanout.Missing == 0
	row(fmt.Sprintf("setting fan-out p50, ms (%d sockets)", ig.Fanout.N), ig.Fanout.P50, ec.Fanout.P50, "%.1f", "", nil)
	row("setting fan-out p99, ms", ig.Fanout.P99, ec.Fanout.P99, "%.1f", "", nil)
	row("setting fan-out max, ms", ig.Fanout.Max, ec.Fanout.Max, "%.1f", "<= 250", b(fanOK))
	text("  sockets the change did not reach", fmt.Sprint(ig.Fanout.Missing), fmt.Sprint(ec.Fanout.Missing), "0", nil)
	row("  the server wrote its last frame, ms from the change", ig.FanoutWritten, ec.FanoutWritten, "%.1f", "", nil)
	text("  CPU s used in the 2 s from the change: server + clients",
		fmt.Sprintf("%.2f + %.2f", ig.FanoutCPU.Server, ig.FanoutCPU.Clients),
		fmt.Sprintf("%.2f + %.2f", ec.FanoutCPU.Server, ec.FanoutCPU.Clients), "", nil)

	ratio := 0.0
	if ec.Activity.PerSecond > 0 {
		ratio = ig.Activity.PerSecond / ec.Activity.PerSecond
	}
	row(fmt.Sprintf("activity frames absorbed per s (%d sockets, best step without drops: %g/s vs %g/s a socket)", r.Sockets-r.Late, ig.Activity.Rate, ec.Activity.Rate),
		ig.Activity.PerSecond, ec.Activity.PerSecond, "%.0f", ">= 0.8x echo", b(ratio >= 0.8))
	row("  frames per s the clients wrote", ig.Activity.Offered, ec.Activity.Offered, "%.0f", "", nil)
	row("server CPU s per 1,000 activity frames (at that step)", ig.Activity.CPUPer1000, ec.Activity.CPUPer1000, "%.4f", "", nil)
	row("  capacity if the server had both CPUs to itself, frames/s", 2000/ig.Activity.CPUPer1000, 2000/ec.Activity.CPUPer1000, "%.0f", "", nil)
	text("  first frame on every socket (idleguard renews each token), s / CPU s",
		fmt.Sprintf("%.1f / %.1f", ig.Prime.Seconds, ig.Prime.CPUSeconds), fmt.Sprintf("%.1f / %.1f", ec.Prime.Seconds, ec.Prime.CPUSeconds), "", nil)
	text("  closes during the run (code: count)", closes(ig.Closes, ig.Errors), closes(ec.Closes, ec.Errors), "", nil)

	gOK := ig.Closed.Stats.Goroutines <= ig.Base.Stats.Goroutines+2 && ig.ClosedGC2.Stats.Goroutines <= ig.Base.Stats.Goroutines+2
	// After the first round the heap keeps what the runtime never gives
	// back (a descriptor per goroutine ever run, map sizes); a second
	// round of the same sockets must not add to it.
	hOK := ig.ClosedGC2.Stats.HeapAlloc <= ig.ClosedGC.Stats.HeapAlloc+ig.ClosedGC.Stats.HeapAlloc/20+(1<<20)
	text("goroutines: baseline -> after close", fmt.Sprintf("%d -> %d", ig.Base.Stats.Goroutines, ig.Closed.Stats.Goroutines),
		fmt.Sprintf("%d -> %d", ec.Base.Stats.Goroutines, ec.Closed.Stats.Goroutines), "back to baseline", b(gOK))
	text("Go heap after forced GC, MiB: baseline -> after close -> after a 2nd round",
		fmt.Sprintf("%.1f -> %.1f -> %.1f", mibf(int64(ig.BaseGC.Stats.HeapAlloc)), mibf(int64(ig.ClosedGC.Stats.HeapAlloc)), mibf(int64(ig.ClosedGC2.Stats.HeapAlloc))),
		fmt.Sprintf("%.1f -> %.1f -> %.1f", mibf(int64(ec.BaseGC.Stats.HeapAlloc)), mibf(int64(ec.ClosedGC.Stats.HeapAlloc)), mibf(int64(ec.ClosedGC2.Stats.HeapAlloc))), "no growth in the 2nd round", b(hOK))
	text("RSS, MiB: baseline -> after close -> forced GC -> 2nd round, forced GC",
		fmt.Sprintf("%.1f -> %.1f -> %.1f -> %.1f", mibf(ig.Base.RSS), mibf(ig.Closed.RSS), mibf(ig.ClosedGC.RSS), mibf(ig.ClosedGC2.RSS)),
		fmt.Sprintf("%.1f -> %.1f -> %.1f -> %.1f", mibf(ec.Base.RSS), mibf(ec.Closed.RSS), mibf(ec.ClosedGC.RSS), mibf(ec.ClosedGC2.RSS)), "", nil)
	fmt.Fprintf(w, "\nsign-out reasons: idleguard %v, echo %v; PUT /api/settings/jwt took %.1f ms\n", ig.Late.Reasons, ec.Late.Reasons, ig.PutMs)
	for _, x := range []struct {
		name string
		r    *serverResult
	}{{"idleguard", ig}, {"echo", ec}} {
		fmt.Fprintf(w, "activity steps, %s (rate a socket: frames/s written -> read, CPU s per 1000, sockets dropped):", x.name)
		for _, st := range x.r.Steps {
			fmt.Fprintf(w, " %g/s: %.0f -> %.0f, %.4f, %d;", st.Rate, st.Offered, st.PerSecond, st.CPUPer1000, st.Dropped)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "projection at 100,000 idle sockets: idleguard %.0f MiB + baseline, echo %.0f MiB + baseline (RSS per socket after soak x 100,000)\n",
		soak*100000/1024, perSocket(ec.Soaked.RSS, ec.Base.RSS, ec.SoakHeld)/kib*100000/1024)
}

// print is the domains table: the shop beside the chain.
func (d *domainsResult) print(w io.Writer) {
	t, c := &d.Target, &d.Chain
	fmt.Fprintf(w, "\n### Domains: a setting change in one of %d\n\n", d.Shops)
	fmt.Fprintf(w, "store: %d shops of %d sessions and the chain of %d (%d sessions), written in %.1f s; the server came up in %.1f s serving %d domains, %d live sessions\n",
		d.Shops, shopSessions, chainSessions, d.Sessions, d.SeedSeconds, d.StartSeconds, d.Served, d.LiveSessions)
	fmt.Fprintf(w, "sockets: %d open (%d in %s, %d in %d other shops, %d in %s) from %d client processes in %.1f s, each with its domain's Host and Origin; server open-files limit %d\n",
		d.Held, t.Sockets, t.Domain, d.OtherSockets, d.OtherSockets/shopSessions, c.Sockets, c.Domain, d.Clients, d.ConnectSeconds, d.OpenFiles)
	fmt.Fprintf(w, "each change: PUT /api/settings/jwt as the domain's admin, %d a domain in turns, alternating %d and %d s; frames counted from just before the PUT to %.0f ms after it\n\n",
		len(t.Changes), changeValues[0], changeValues[1], d.WindowMs)
	fmt.Fprintf(w, "| figure | %s (one of %d shops) | %s (one domain of %d sessions) | |\n", t.Domain, d.Shops, c.Domain, chainSessions)
	fmt.Fprintln(w, "| --- | ---: | ---: | --- |")
	row := func(name, a, b, verdict string) { fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, a, b, verdict) }
	pair := func(x dist) string { return fmt.Sprintf("%.1f / %.1f", x.P50, x.Max) }
	span := func(lo, hi int64) string {
		if lo == hi {
			return fmt.Sprint(lo)
		}
		return fmt.Sprintf("%d-%d", lo, hi)
	}
	verdict := func(ok bool) string {
		if ok {
			return "exactly the domain's: met"
		}
		return "**not exactly the domain's**"
	}
	row(fmt.Sprintf("setting fan-out: PUT to the last of the domain's sockets, ms, median / max of %d changes", len(t.Changes)), pair(t.Fanout), pair(c.Fanout), "")
	row("  half of the domain's sockets had it, ms, median / max", pair(t.Half), pair(c.Half), "")
	row("  the server wrote its last frame, ms, median / max", pair(t.Written), pair(c.Written), "")
	row("  PUT answered, ms, median / max", pair(t.Put), pair(c.Put), "")
	row("sockets open in the domain", fmt.Sprint(t.Sockets), fmt.Sprint(c.Sockets), "")
	row(fmt.Sprintf("sockets that received any frame in a change's window (of %d open)", d.Held),
		span(int64(t.Touched[0]), int64(t.Touched[1])), span(int64(c.Touched[0]), int64(c.Touched[1])), verdict(t.exact() && c.exact()))
	row("  frames they received", span(t.Frames[0], t.Frames[1]), span(c.Frames[0], c.Frames[1]), "")
	row("  of them in another domain / the domain's sockets missed, all changes", fmt.Sprintf("%d / %d", t.Outside, t.Missing), fmt.Sprintf("%d / %d", c.Outside, c.Missing), "")
	row("sessions the change re-armed (the server's log: live_sessions; the tills' and the admin's own)", t.liveSessions(), c.liveSessions(), "")
	row(fmt.Sprintf("server CPU s in a change's %.0f ms window, mean", d.WindowMs), fmt.Sprintf("%.2f", t.CPUPerChange), fmt.Sprintf("%.2f", c.CPUPerChange), "")
	fmt.Fprintln(w)
	for _, s := range []*domainSide{t, c} {
		fmt.Fprintf(w, "changes in %s (expiration s: fan-out, half the sockets, last frame written, PUT answered, ms):", s.Domain)
		for _, ch := range s.Changes {
			fmt.Fprintf(w, " %d: %.1f, %.1f, %.1f, %.1f;", ch.Expiration, ch.FanoutMs, ch.HalfMs, ch.WrittenMs, ch.PutMs)
		}
		fmt.Fprintln(w)
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func mibf(b int64) float64 { return float64(b) / (1 << 20) }

func closes(m map[int]int, errs int) string {
	var keys []int
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d: %d", k, m[k]))
	}
	if errs > 0 {
		parts = append(parts, fmt.Sprintf("no close frame: %d", errs))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
