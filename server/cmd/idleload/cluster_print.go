package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// print is the cluster table: the cluster beside the single node, then
// the activity steps and the nodes' first error lines.
func (c *clusterResult) print(w io.Writer) {
	cl, single := c.Runs[0], (*fleetResult)(nil)
	if len(c.Runs) > 1 {
		single = c.Runs[1]
	}
	fmt.Fprintf(w, "\n### Cluster: %d sockets on %d nodes, one Redis, one PostgreSQL\n\nrun: %s; code %s\n", cl.Sockets, cl.Shape.Nodes, c.Config, c.Code)
	for _, r := range c.Runs {
		fmt.Fprintf(w, "%s: %d nodes, %d sessions of two tabs (%d sockets, on two different nodes: %v), %d due in one second; %d client processes; engines %.1f s, store %.1f s, nodes up %.1f s, connect %.1f s (%d failed)\n",
			r.Shape.Name, r.Shape.Nodes, r.Shape.Sessions, r.Sockets, r.Shape.Nodes > 1, r.Shape.Late, r.Clients,
			r.EnginesSeconds, r.PrepareSeconds, r.StartSeconds, r.ConnectSeconds, r.ConnectFailed)
	}
	fmt.Fprintf(w, "the table took %.0f s\n\n", c.Seconds)

	fmt.Fprintf(w, "| figure | cluster (%d nodes) | single node, same run | budget | |\n", cl.Shape.Nodes)
	fmt.Fprintln(w, "| --- | ---: | ---: | --- | --- |")
	row := func(name, a, b, budget string, ok *bool) {
		verdict := ""
		if ok != nil {
			verdict = "met"
			if !*ok {
				verdict = "**missed**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", name, a, b, budget, verdict)
	}
	both := func(fn func(r *fleetResult) string) (string, string) {
		b := "–"
		if single != nil {
			b = fn(single)
		}
		return fn(cl), b
	}
	bv := func(v bool) *bool { return &v }

	a, b := both(func(r *fleetResult) string {
		var held []int
		for _, n := range r.Nodes {
			held = append(held, n.Held)
		}
		return fmt.Sprintf("%s (%d in all)", spanInts(held), sum(held))
	})
	row("sockets held per node at settle", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		var v []int
		for _, n := range r.Nodes {
			v = append(v, n.Sessions)
		}
		return spanInts(v)
	})
	row("live sessions on each node's idle clock", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		var v []float64
		for _, n := range r.Nodes {
			v = append(v, mibf(n.Base.RSS))
		}
		return spanFloats(v, "%.1f")
	})
	row("RSS before connecting (every session loaded), MiB", a, b, "", nil)
	singleRSS := 0.0
	if single != nil {
		singleRSS = single.rssPerSocket(0)
	}
	worst := 0.0
	var rss []float64
	for k := range cl.Nodes {
		rss = append(rss, cl.rssPerSocket(k))
		worst = max(worst, cl.rssPerSocket(k))
	}
	budgetRSS := 8.0 // the single node's 7 KiB + 1
	if single != nil {
		budgetRSS = max(singleRSS, 7) + 1
	}
	row("RSS per socket per node at settle, KiB (min-max; mean)", fmt.Sprintf("%s; %.2f", spanFloats(rss, "%.2f"), mean(rss)), fmt.Sprintf("%.2f", singleRSS),
		fmt.Sprintf("<= %.2f (single + 1)", budgetRSS), bv(worst <= budgetRSS && worst > 0))
	a, b = both(func(r *fleetResult) string {
		var h, st []float64
		for _, n := range r.Nodes {
			h = append(h, perSocket(int64(n.Settle.Stats.HeapInuse), int64(n.Base.Stats.HeapInuse), n.Held)/kib)
			st = append(st, perSocket(int64(n.Settle.Stats.StackInuse), int64(n.Base.Stats.StackInuse), n.Held)/kib)
		}
		return fmt.Sprintf("%.2f / %.2f", mean(h), mean(st))
	})
	row("  of which Go heap in use / goroutine stacks, KiB (mean of the nodes)", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		var g []float64
		for _, n := range r.Nodes {
			g = append(g, perSocket(int64(n.Settle.Stats.Goroutines), int64(n.Base.Stats.Goroutines), n.Held))
		}
		return spanFloats(g, "%.2f")
	})
	row("goroutines per socket", a, b, "", nil)

	lateOK := func(r *fleetResult) bool {
		return r.Late.N > 0 && r.Late.P99 <= 100 && r.Late.Early == 0 && r.Late.Missing == 0 && r.Unexpected == 0
	}
	a, b = both(func(r *fleetResult) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f", r.Late.P50, r.Late.P99, r.Late.Max)
	})
	row(fmt.Sprintf("sign-out lateness p50 / p99 / max, ms (%d sessions, %d sockets, due in one second)", cl.Shape.Late, cl.Late.N+cl.Late.Missing), a, b, "p99 <= 100", bv(lateOK(cl)))
	a, b = both(func(r *fleetResult) string {
		return fmt.Sprintf("%d / %d / %d", r.Late.Early, r.Late.Missing, r.Unexpected)
	})
	row("  sign-outs early / missing / outside the group", a, b, "0 early", bv(cl.Late.Early == 0 && cl.Late.Missing == 0 && cl.Unexpected == 0))
	a, b = both(func(r *fleetResult) string { return fmt.Sprint(r.Late.Reasons) })
	row("  reasons", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		var v []float64
		for _, n := range r.Nodes {
			v = append(v, n.LateP99)
		}
		return spanFloats(v, "%.1f")
	})
	row("  p99 of each node's sockets, ms", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		var v []string
		for _, l := range r.Logs {
			v = append(v, fmt.Sprintf("%s %d (%.0f to %.0f)", l.Node, l.SignedOut, l.SignedFirst, l.SignedLast))
		}
		return strings.Join(v, ", ")
	})
	row("  idle sign-outs each node logged (ms after the second began: first to last), to the end of the run", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f", r.LateRem.P50, r.LateRem.P99, r.LateRem.Max)
	})
	row("  cross-check on the client's monotonic clock p50 / p99 / max, ms", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		d := r.SignOutPG
		return fmt.Sprintf("%d write transactions, %d rows updated (%s)", d.Writes, d.Updated, d.statements())
	})
	row("  PostgreSQL from 2 s before to 4 s after the second", a, "–", "", nil)
	row("  Redis in the same 6 s: commands sent", fmt.Sprintf("%d (%s)", cl.SignOutRedis.Sent, cl.SignOutRedis.byCommand()), "–", "", nil)

	fanOK := cl.Fanout.N > 0 && cl.Fanout.Max <= 1000 && cl.Fanout.Missing == 0
	a, b = both(func(r *fleetResult) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f", r.Fanout.P50, r.Fanout.P99, r.Fanout.Max)
	})
	row(fmt.Sprintf("setting fan-out p50 / p99 / max, ms (PUT on %s to every socket on every node)", cl.Nodes[0].Name), a, b, "max <= 1000", bv(fanOK))
	a, b = both(func(r *fleetResult) string {
		return fmt.Sprintf("%d of %d", r.Fanout.Missing, r.Fanout.N+r.Fanout.Missing)
	})
	row("  sockets the change did not reach", a, b, "0", nil)
	a, b = both(func(r *fleetResult) string {
		var v []string
		for _, n := range r.Nodes {
			v = append(v, fmt.Sprintf("%s %.0f", n.Name, n.FanoutMax))
		}
		return strings.Join(v, ", ")
	})
	row("  the last socket of each node had it, ms", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		var v []string
		for _, n := range r.Nodes {
			v = append(v, fmt.Sprintf("%.0f", n.FanoutWritten))
		}
		return strings.Join(v, ", ")
	})
	row("  each node wrote its last frame, ms", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		var v []string
		for _, l := range r.Logs {
			v = append(v, fmt.Sprintf("%s %.0f", l.Node, l.SettingMs))
		}
		return strings.Join(v, ", ")
	})
	row("  each node logged \"expiration time changed\", ms after the PUT", a, b, "", nil)
	a, b = both(func(r *fleetResult) string { return fmt.Sprintf("%.1f", r.PutMs) })
	row("  PUT answered, ms", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		c := r.FanoutCPU
		return fmt.Sprintf("%.2f + %.2f + %.2f + %.2f", c.Nodes, c.Clients, c.Redis, c.PG)
	})
	row("  CPU s in the 2 s from the change: nodes + clients + Redis + PostgreSQL", a, b, "", nil)

	a, b = both(func(r *fleetResult) string {
		return fmt.Sprintf("%.0f (%g/s a socket, %d sockets open)", r.Best.PerSecond, r.Best.Rate, r.Best.Sockets)
	})
	row(fmt.Sprintf("activity frames absorbed per s, best step dropping at most 1%% (of %d sockets outside the group)", cl.Sockets-2*cl.Shape.Late), a, b, "", nil)
	a, b = both(func(r *fleetResult) string { return fmt.Sprintf("%.0f", r.Best.Offered) })
	row("  frames per s the clients wrote", a, b, "", nil)
	a, b = both(func(r *fleetResult) string { return fmt.Sprintf("%.4f", r.Best.CPUPer1000) })
	row("  node CPU s per 1,000 frames (all nodes)", a, b, "", nil)
	cmdOK := true
	var perFrame []string
	for _, st := range cl.Steps {
		if st.Frames > 0 {
			x := float64(st.Redis.Sent) / float64(st.Frames)
			perFrame = append(perFrame, fmt.Sprintf("%g/s: %.3f", st.Rate, x))
			if x > 1 {
				cmdOK = false
			}
		}
	}
	row("Redis commands the nodes sent per activity frame, each step", strings.Join(perFrame, ", "), "–", "<= 1", bv(cmdOK && len(perFrame) > 0))
	if cl.Best.Frames > 0 {
		row("  at the best step: sent / run by the scripts inside Redis, per frame",
			fmt.Sprintf("%.3f / %.3f (%s)", float64(cl.Best.Redis.Sent)/float64(cl.Best.Frames), float64(cl.Best.Redis.Scripts)/float64(cl.Best.Frames), cl.Best.Redis.byCommand()), "–", "", nil)
		row("Redis CPU s per 1,000 activity frames (best step)", fmt.Sprintf("%.4f", cl.Best.Redis.CPU/float64(cl.Best.Frames)*1000), "–", "", nil)
	}
	live := float64(cl.Shape.Sessions - cl.Shape.Late)
	var redisPerSession []string
	for _, st := range cl.Steps {
		if st.Seconds > 0 {
			redisPerSession = append(redisPerSession, fmt.Sprintf("%g/s: %.1f", st.Rate, st.Redis.CPU/st.Seconds/live*1e6))
		}
	}
	row(fmt.Sprintf("Redis CPU per live session, us per s (%.0f sessions, two tabs each sending), each step", live), strings.Join(redisPerSession, ", "), "–", "", nil)
	a, b = both(func(r *fleetResult) string { return fmt.Sprintf("%.2f", r.IdleNodesCPU) })
	row("nodes' CPU while idle (settle), CPUs in all", a, b, "", nil)
	row("Redis CPU while idle (settle), % of a CPU", fmt.Sprintf("%.2f", cl.IdleRedis.CPU/max(cl.IdleRedis.Seconds, 1e-9)*100), "–", "", nil)
	if cl.RedisSessions > 0 {
		row("Redis memory per session recorded, bytes (used_memory empty -> at settle, sessions in its hash; 6 nodes' connections included)",
			fmt.Sprintf("%.0f (%.1f -> %.1f MiB, %d)", float64(cl.RedisMemAfter-cl.RedisMemBefore)/float64(cl.RedisSessions), mibf(cl.RedisMemBefore), mibf(cl.RedisMemAfter), cl.RedisSessions), "–", "", nil)
	}
	var pgSteps []string
	for _, st := range cl.Steps {
		pgSteps = append(pgSteps, fmt.Sprintf("%g/s: %.0f / %.0f / %.0f", st.Rate, st.PG.perSecond(st.PG.Writes), st.PG.perSecond(st.PG.Updated), st.PG.perSecond(st.PG.WALBytes)/kib))
	}
	row("PostgreSQL write transactions / rows updated / WAL KiB per s, each step", strings.Join(pgSteps, "; "), "–", "", nil)
	row("  idle (settle); statements", fmt.Sprintf("%.1f / %.1f / %.1f", cl.IdlePG.perSecond(cl.IdlePG.Writes), cl.IdlePG.perSecond(cl.IdlePG.Updated), cl.IdlePG.perSecond(cl.IdlePG.WALBytes)/kib)+"; "+cl.IdlePG.statements(), "–", "", nil)
	var pgCPU []string
	for _, st := range cl.Steps {
		if st.Seconds > 0 {
			pgCPU = append(pgCPU, fmt.Sprintf("%g/s: %.2f", st.Rate, st.PG.CPU/st.Seconds))
		}
	}
	row("  PostgreSQL CPU, CPUs busy, each step", strings.Join(pgCPU, ", "), "–", "", nil)
	a, b = both(func(r *fleetResult) string {
		p := r.Prime
		s := fmt.Sprintf("%.1f s, %.1f node CPU s", p.Seconds, p.NodesCPU)
		if r.Shape.Cluster {
			s += fmt.Sprintf("; PostgreSQL statements %s, %.1f CPU s; Redis %d commands (%s)", p.PG.statements(), p.PG.CPU, p.Redis.Sent, p.Redis.byCommand())
		}
		return s
	})
	row("first frame on every socket (each node renews each session's token once)", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		s := closes(r.Closes, r.Errors)
		if len(r.ErrorTexts) > 0 {
			s += fmt.Sprintf(" (%s; they ended %.1f / %.1f / %.1f s after opening, p50 / p99 / max; by phase: %s)", countsLine(toInt64(r.ErrorTexts)),
				r.ErrorAfter.P50, r.ErrorAfter.P99, r.ErrorAfter.Max, countsLine(toInt64(r.ErrorPhase)))
		}
		return s
	})
	row("closes during the run (code: count)", a, b, "", nil)
	a, b = both(func(r *fleetResult) string { return countsLine(toInt64(r.CloseDetail)) })
	row("  every socket that ended, by code, group and phase", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		d := r.ClosedFrames
		return fmt.Sprintf("%.0f / %.0f / %.0f", d.P50, d.P99, d.Max)
	})
	row("  frames those without a close frame (1006, reset) had received, p50 / p99 / max", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		var socks, g []int
		for _, n := range r.Nodes {
			socks = append(socks, n.Closed.Stats.Sockets)
			g = append(g, n.Closed.Stats.Goroutines-n.Base.Stats.Goroutines)
		}
		return fmt.Sprintf("%s / %s", spanInts(socks), spanInts(g))
	})
	row("after closing: sockets open / goroutines above the baseline, per node", a, b, "", nil)
	a, b = both(func(r *fleetResult) string {
		var dead []string
		for _, n := range r.Nodes {
			if n.Exited != "" {
				dead = append(dead, n.Name+": "+n.Exited)
			}
		}
		if len(dead) == 0 {
			return "none"
		}
		return strings.Join(dead, "; ")
	})
	row("nodes that exited during the run", a, b, "none", nil)
	a, b = both(func(r *fleetResult) string { return logSummary(r.Logs) })
	row("warnings and errors in the nodes' logs", a, b, "", nil)
	fmt.Fprintln(w)

	for _, r := range c.Runs {
		fmt.Fprintf(w, "%s activity steps (rate a socket, sockets open: frames/s written -> read, node CPU s per 1000, dropped; Redis commands sent per frame, Redis CPU s; PostgreSQL write transactions/s, rows updated/s, statements):", r.Shape.Name)
		for _, st := range r.Steps {
			per := 0.0
			if st.Frames > 0 {
				per = float64(st.Redis.Sent) / float64(st.Frames)
			}
			fmt.Fprintf(w, " %g/s, %d: %.0f -> %.0f, %.4f, %d; %.3f, %.2f; %.0f, %.0f, %s;", st.Rate, st.Sockets, st.Offered, st.PerSecond, st.CPUPer1000, st.Dropped,
				per, st.Redis.CPU, st.PG.perSecond(st.PG.Writes), st.PG.perSecond(st.PG.Updated), st.PG.statements())
		}
		fmt.Fprintln(w)
	}
	for _, r := range c.Runs {
		for _, l := range r.Logs {
			for _, line := range l.First {
				fmt.Fprintf(w, "%s %s: %s\n", r.Shape.Name, l.Node, line)
			}
		}
	}
}

// logSummary is "node1: 2 ERROR msg, ..." or "none".
func logSummary(logs []nodeLog) string {
	var parts []string
	for _, l := range logs {
		keys := make([]string, 0, len(l.Counts))
		for k := range l.Counts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d %s", l.Node, l.Counts[k], k))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func toInt64(m map[string]int) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

func spanInts(v []int) string {
	if len(v) == 0 {
		return "–"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func spanFloats(v []float64, format string) string {
	if len(v) == 0 {
		return "–"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	if fmt.Sprintf(format, lo) == fmt.Sprintf(format, hi) {
		return fmt.Sprintf(format, lo)
	}
	return fmt.Sprintf(format+"-"+format, lo, hi)
}

func sum(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t / float64(len(v))
}
