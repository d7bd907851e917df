package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// The cluster table's measuring phases, after the sockets are open: the
// setting change (fan-out, then the sign-out second it sets) and activity.

// timing is the setting change on the first node: its fan-out to every
// socket on every node, then the sign-out second it sets for the group.
func (f *fleet) timing(ctx context.Context, cfg config, res *fleetResult, adminToken string) error {
	ds := f.ds
	signOutAt := time.Now().Add(38 * time.Second).Truncate(time.Second).Add(time.Second)
	expiration := int64(signOutAt.Sub(ds.base.Add(-lateBack)) / time.Second)
	res.Expiration, res.SignOutAt = expiration, signOutAt
	logf("%s: fan-out: PUT /api/settings/jwt expiration_seconds=%d on %s (sign-out group due in the second from %s)",
		f.shape.Name, expiration, f.nodes[0].name, signOutAt.Format("15:04:05"))
	body, _ := json.Marshal(map[string]int64{"expiration_seconds": expiration})
	c0, n0 := clientsCPU(f.clients), f.nodesCPU()
	f.phase("fan-out and sign-out")
	ra, pa := f.engineSample(ctx)
	profiled := f.profile(cfg, "fanout", 4)
	time.Sleep(100 * time.Millisecond)
	at := time.Now()
	res.PutAt = at
	if _, err := post("PUT", "http://"+f.nodes[0].addr+"/api/settings/jwt", adminToken, "application/json", body); err != nil {
		return err
	}
	res.PutMs = ms(since(at))
	if err := sleep(ctx, time.Until(at.Add(2*time.Second))); err != nil {
		return err
	}
	rb, pb := f.engineSample(ctx)
	res.FanoutCPU = fleetCPU{Nodes: f.nodesCPU() - n0, Clients: clientsCPU(f.clients) - c0, Redis: rb.CPU - ra.CPU, PG: pb.CPU - pa.CPU}
	// Each node's last text frame, once every node is done (the group's
	// warnings come 30 s before its deadlines, 8 s or more after the PUT).
	if err := sleep(ctx, time.Until(at.Add(7*time.Second))); err != nil {
		return err
	}
	for k, n := range f.nodes {
		res.Nodes[k].FanoutWritten = lastWriteAfter(n, at)
	}
	<-profiled

	// The sign-out second, and the engines' work around it.
	if err := sleep(ctx, time.Until(signOutAt.Add(-2*time.Second))); err != nil {
		return err
	}
	ra, pa = f.engineSample(ctx)
	profiled = f.profile(cfg, "signout", 5)
	t := time.Now()
	if err := sleep(ctx, time.Until(signOutAt.Add(4*time.Second))); err != nil {
		return err
	}
	rb, pb = f.engineSample(ctx)
	res.SignOutRedis, res.SignOutPG = f.engineDelta(ra, rb, pa, pb, since(t).Seconds())
	<-profiled
	// Every logout that is coming, however late: until each socket of
	// the group has one (or has closed), or 20 s after the second.
	var reps []reply
	for {
		var err error
		if reps, err = all(f.clients, command{Cmd: "report"}); err != nil {
			return err
		}
		waiting := 0
		for _, rep := range reps {
			for _, s := range rep.Sockets {
				if f.ds.late[s.I/2] >= 0 && s.Logout == 0 && s.Code == 0 && s.Err == "" && s.Frames > 0 {
					waiting++
				}
			}
		}
		if waiting == 0 || time.Now().After(signOutAt.Add(20*time.Second)) {
			break
		}
		logf("%s: %d sockets of the group still wait for their logout", f.shape.Name, waiting)
		if err := sleep(ctx, 2*time.Second); err != nil {
			return err
		}
	}
	res.judgeTiming(f, reps, at, signOutAt)
	logf("%s: fan-out max %.1f ms (%d missing); sign-out p99 %.1f ms, max %.1f ms (%d early, %d missing, %d outside the group)",
		f.shape.Name, res.Fanout.Max, res.Fanout.Missing, res.Late.P99, res.Late.Max, res.Late.Early, res.Late.Missing, res.Unexpected)
	return nil
}

// profile saves, with -profile-dir, a CPU profile of the first node over
// the next secs seconds; the channel closes when it is written.
func (f *fleet) profile(cfg config, what string, secs int) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n := f.nodes[0]
		if err := n.saveProfile(cfg.profileDir, fmt.Sprintf("profile?seconds=%d", secs), fmt.Sprintf("%s-%s-%s-cpu.pprof", f.shape.Name, n.name, what)); err != nil {
			logf("profile %s: %v", what, err)
		}
	}()
	return done
}

func (f *fleet) nodesCPU() float64 {
	var sum float64
	for _, n := range f.nodes {
		sum += cpuOf(n)
	}
	return sum
}

// activity: one frame on every socket outside the sign-out group (each
// node renews the session's token on the first activity it sees or hears
// of after its start: a one-off cost, timed apart), then steps of rising
// rates, each spread evenly over its interval, until the nodes fall behind
// or a socket is dropped.
func (f *fleet) activity(ctx context.Context, cfg config, res *fleetResult) error {
	ra, pa := f.engineSample(ctx)
	a, err := f.nodesNow()
	if err != nil {
		return err
	}
	f.phase("first frames")
	profiled := f.profile(cfg, "first-frames", 10)
	// One round: every socket once (a spread round skips what falls behind).
	reps, err := all(f.clients, command{Cmd: "send", Srv: "ig", Rate: 1, Ms: 1000})
	if err != nil {
		return err
	}
	var sent int64
	for _, r := range reps {
		sent += r.Sent
	}
	// Until the nodes have read them all, then are quiet.
	for limit := time.Now().Add(60 * time.Second); ; {
		cur, err := f.nodesNow()
		if err != nil {
			return err
		}
		if int64(cur.Frames-a.Frames) >= sent || time.Now().After(limit) {
			if int64(cur.Frames-a.Frames) < sent {
				logf("%s: first frames: %d of %d read after 60 s", f.shape.Name, cur.Frames-a.Frames, sent)
			}
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := f.waitQuiet(20 * time.Second); err != nil {
		return err
	}
	<-profiled
	b, err := f.nodesNow()
	if err != nil {
		return err
	}
	rb, pb := f.engineSample(ctx)
	res.Prime = fleetStep{Rate: 1, Frames: b.Frames - a.Frames, Seconds: b.At.Sub(a.At).Seconds(), NodesCPU: b.CPU - a.CPU}
	res.Prime.Redis, res.Prime.PG = f.engineDelta(ra, rb, pa, pb, res.Prime.Seconds)
	logf("%s: first frames: %d read in %.1f s, %.1f node CPU s; PostgreSQL statements %s",
		f.shape.Name, res.Prime.Frames, res.Prime.Seconds, res.Prime.NodesCPU, res.Prime.PG.statements())

	for _, rate := range cfg.clusterRates {
		st, err := f.step(ctx, cfg, rate)
		if err != nil {
			return err
		}
		res.Steps = append(res.Steps, st)
		logf("%s: at %g/s a socket: %.0f frames/s written, %.0f absorbed, %.4f node CPU s per 1000, %d dropped; redis %d commands sent (%s), %.2f CPU s; PostgreSQL %.0f write transactions/s, %.0f rows updated/s",
			f.shape.Name, rate, st.Offered, st.PerSecond, st.CPUPer1000, st.Dropped, st.Redis.Sent, st.Redis.byCommand(), st.Redis.CPU,
			st.PG.perSecond(st.PG.Writes), st.PG.perSecond(st.PG.Updated))
		if st.tooManyDropped() || st.PerSecond < 0.9*st.Offered {
			break // saturated
		}
	}
	for _, st := range res.Steps {
		if !st.tooManyDropped() && st.PerSecond > res.Best.PerSecond {
			res.Best = st
		}
	}
	return nil
}

func (f *fleet) step(ctx context.Context, cfg config, rate float64) (fleetStep, error) {
	f.phase(fmt.Sprintf("activity at %g/s", rate))
	total := cfg.warm + cfg.window + time.Second
	done := make(chan error, 1)
	var reps []reply
	go func() {
		var err error
		reps, err = all(f.clients, command{Cmd: "send", Srv: "ig", Rate: rate, Ms: total.Milliseconds(), Spread: true})
		done <- err
	}()
	if err := sleep(ctx, cfg.warm); err != nil {
		return fleetStep{}, err
	}
	ra, pa := f.engineSample(ctx)
	a, err := f.nodesNow()
	if err != nil {
		return fleetStep{}, err
	}
	profiled := f.profile(cfg, fmt.Sprintf("activity-%g", rate), max(int(cfg.window/time.Second), 1))
	if err := sleep(ctx, cfg.window); err != nil {
		return fleetStep{}, err
	}
	<-profiled
	b, err := f.nodesNow()
	if err != nil {
		return fleetStep{}, err
	}
	rb, pb := f.engineSample(ctx)
	if err := <-done; err != nil {
		return fleetStep{}, err
	}
	var sent, msMax, dropped, alive int64
	for _, x := range reps {
		sent += x.Sent
		msMax = max(msMax, x.Ms)
		dropped += x.Dropped
		alive += x.Alive
	}
	secs := b.At.Sub(a.At).Seconds()
	st := fleetStep{Rate: rate, Frames: b.Frames - a.Frames, Seconds: secs, NodesCPU: b.CPU - a.CPU, Dropped: dropped, Sockets: alive}
	st.PerSecond = float64(st.Frames) / secs
	if msMax > 0 {
		st.Offered = float64(sent) / (float64(msMax) / 1000)
	}
	if st.Frames > 0 {
		st.CPUPer1000 = st.NodesCPU / float64(st.Frames) * 1000
	}
	st.Redis, st.PG = f.engineDelta(ra, rb, pa, pb, secs)
	if err := f.waitQuiet(15 * time.Second); err != nil { // let any backlog drain
		return st, err
	}
	return st, nil
}

// waitQuiet waits until the nodes together use less than a tenth of a CPU
// each over half a second, or limit passes; a node that has exited is an
// error.
func (f *fleet) waitQuiet(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	prev, err := f.nodesNow()
	if err != nil {
		return err
	}
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		cur, err := f.nodesNow()
		if err != nil {
			return err
		}
		if (cur.CPU-prev.CPU)/cur.At.Sub(prev.At).Seconds() < 0.1*float64(len(f.nodes)) {
			return nil
		}
		prev = cur
	}
	logf("%s: nodes still busy after %v", f.shape.Name, limit)
	return nil
}
