package main

import (
	"context"
	"fmt"
	"time"
)

// throughput measures activity on srv: first one frame on every socket
// outside the sign-out group (idleguard renews each session's token on its
// first activity after a restart: a one-off cost, timed apart), then steps
// of rising per-socket rates, each measured in a window after a warm-up,
// until the server falls behind or a socket is dropped.
func throughput(ctx context.Context, cfg config, clients []*clientProc, s *server, srv string, r *serverResult) error {
	a, err := s.sample(false)
	if err != nil {
		return err
	}
	if _, err := all(clients, command{Cmd: "send", Srv: srv, Rate: 1, Ms: 1000}); err != nil {
		return err
	}
	b := waitQuiet(s, 30*time.Second)
	r.Prime = prime{Seconds: b.At.Sub(a.At).Seconds(), CPUSeconds: b.CPU - a.CPU, Frames: b.Stats.Frames - a.Stats.Frames}

	var rates []float64
	for _, x := range []float64{2, 5, 10} {
		if x < cfg.rate {
			rates = append(rates, x)
		}
	}
	rates = append(rates, cfg.rate)
	for _, rate := range rates {
		st, err := step(ctx, cfg, clients, s, srv, rate)
		if err != nil {
			return err
		}
		r.Steps = append(r.Steps, st)
		logf("  %s at %g/s a socket: %.0f frames/s written, %.0f absorbed, %.4f CPU s per 1000, %d dropped",
			s.name, rate, st.Offered, st.PerSecond, st.CPUPer1000, st.Dropped)
		if st.Dropped > 0 || st.PerSecond < 0.9*st.Offered {
			break // saturated: more would only back up
		}
	}
	// The figure: the most the server absorbed in a step that dropped no
	// socket.
	for _, st := range r.Steps {
		if st.Dropped == 0 && st.PerSecond > r.Activity.PerSecond {
			r.Activity = st
		}
	}
	return nil
}

func step(ctx context.Context, cfg config, clients []*clientProc, s *server, srv string, rate float64) (activity, error) {
	total := cfg.warm + cfg.window + time.Second
	done := make(chan error, 1)
	var reps []reply
	go func() {
		var err error
		reps, err = all(clients, command{Cmd: "send", Srv: srv, Rate: rate, Ms: total.Milliseconds()})
		done <- err
	}()
	if err := sleep(ctx, cfg.warm); err != nil {
		return activity{}, err
	}
	a, err := s.sample(false)
	if err != nil {
		return activity{}, err
	}
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		if rate == cfg.rate {
			s.saveProfile(cfg.profileDir, fmt.Sprintf("profile?seconds=%d", max(int(cfg.window/time.Second), 1)), s.name+"-activity-cpu.pprof")
		}
	}()
	if err := sleep(ctx, cfg.window); err != nil {
		return activity{}, err
	}
	b, err := s.sample(false)
	if err != nil {
		return activity{}, err
	}
	if err := <-done; err != nil {
		return activity{}, err
	}
	<-profiled
	var sent, ms, dropped int64
	for _, x := range reps {
		sent += x.Sent
		ms = max(ms, x.Ms)
		dropped += x.Dropped
	}
	frames := float64(b.Stats.Frames - a.Stats.Frames)
	secs := b.At.Sub(a.At).Seconds()
	st := activity{
		Rate:       rate,
		Frames:     uint64(frames),
		Seconds:    secs,
		PerSecond:  frames / secs,
		Offered:    float64(sent) / (float64(ms) / 1000),
		CPUSeconds: b.CPU - a.CPU,
		Dropped:    dropped,
	}
	if frames > 0 {
		st.CPUPer1000 = (b.CPU - a.CPU) / frames * 1000
	}
	waitQuiet(s, 10*time.Second) // let any backlog drain
	return st, nil
}

// waitQuiet waits until the server uses less than a tenth of a CPU over
// half a second, or limit passes, and returns the last sample.
func waitQuiet(s *server, limit time.Duration) sample {
	deadline := time.Now().Add(limit)
	prev, _ := s.sample(false)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		cur, err := s.sample(false)
		if err != nil {
			return prev
		}
		if (cur.CPU-prev.CPU)/cur.At.Sub(prev.At).Seconds() < 0.1 {
			return cur
		}
		prev = cur
	}
	return prev
}
