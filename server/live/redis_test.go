package live_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"idleguard/server/internal/livetest"
	"idleguard/server/internal/redistest"
	"idleguard/server/live"
)

// testHealth is the subscriptions' ping interval in these tests: a frozen
// Redis is noticed within about two of them.
const testHealth = 200 * time.Millisecond

// newRedis is a node on url, closed at the test's cleanup.
func newRedis(t testing.TB, url, node string) *live.Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := live.NewRedis(ctx, live.RedisOptions{URL: url, Node: node, HealthInterval: testHealth})
	if err != nil {
		t.Fatalf("NewRedis(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// joinRedis: every test of the suite shares one deployment (its names are
// its own), and each node is a client of its own.
func joinRedis(url string) livetest.NewCluster {
	return func(t *testing.T) livetest.Join {
		return func(id string) live.Layer { return newRedis(t, url, id) }
	}
}

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	livetest.Contract(t, joinRedis(srv.URL()))
}

func TestRedisClusterContract(t *testing.T) {
	c := redistest.StartCluster(t)
	livetest.Contract(t, joinRedis(c.URL()))
}

func TestRedisSentinelContract(t *testing.T) {
	srv := redistest.Start(t)
	s := redistest.StartSentinel(t, srv)
	livetest.Contract(t, joinRedis(s.URL()))
}

// TestRedisClusterChannelsSpread: the signal channels are sharded channels
// spread over the cluster's shards, so each shard carries a share of the
// signals and every one is heard.
func TestRedisClusterChannelsSpread(t *testing.T) {
	c := redistest.StartCluster(t)
	livetest.Listen(t, newRedis(t, c.URL(), "b"))
	total := 0
	for _, s := range c.Servers {
		names, err := s.Client().PubSubShardChannels(context.Background(), "ig:sig:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(names) < live.Channels/4 {
			t.Errorf("%s carries %d of the %d channels (%v): not spread", s, len(names), live.Channels, names)
		}
		total += len(names)
	}
	if total != live.Channels {
		t.Fatalf("the shards carry %d channels, want %d", total, live.Channels)
	}
}

// TestRedisRestart: Redis restarts and loses everything. Run reconnects by
// itself and calls resynced, the lost activity reads as not held (the
// caller goes to the durable store), and Record (whose scripts Redis has
// lost too) and the signals work again.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedis(t, srv.URL(), "a"), newRedis(t, srv.URL(), "b")
	lb := livetest.Listen(t, b)
	ctx := context.Background()
	rec := []live.Activity{{Domain: "acme", SessionID: "s1", Ago: 4 * time.Second}}
	if err := a.Record(ctx, rec); err != nil {
		t.Fatal(err)
	}
	lb.Next(t)

	srv.Restart()
	lb.WaitResync(t)
	if _, ok, err := b.Idle(ctx, "acme", "s1"); err != nil || ok {
		t.Fatalf("Idle after the restart: ok %v, err %v; want not held", ok, err)
	}
	if err := a.Record(ctx, rec); err != nil {
		t.Fatalf("Record after the restart: %v", err)
	}
	if s := lb.Next(t); s.Kind != live.KindActivity || len(s.Activity) != 1 {
		t.Fatalf("after the restart heard %+v, want the activity", s)
	}
	if d, ok, err := b.Idle(ctx, "acme", "s1"); err != nil || !ok || d < 4*time.Second {
		t.Fatalf("Idle after recording again: %v, %v, %v", d, ok, err)
	}
	if err := a.Publish(ctx, live.Signal{Kind: live.KindSettings, Domain: "acme"}); err != nil {
		t.Fatal(err)
	}
	if s := lb.Next(t); s.Kind != live.KindSettings {
		t.Fatalf("heard %+v, want the settings signal", s)
	}
}

// TestRedisOutage: Redis is down for a while (killed, then started again on
// its port after 2 s): Run keeps trying by itself and, when Redis is back,
// calls resynced; signals flow again.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedis(t, srv.URL(), "a"), newRedis(t, srv.URL(), "b")
	lb := livetest.Listen(t, b)
	ctx := context.Background()

	srv.Kill()
	time.Sleep(2 * time.Second) // the outage: several reconnect attempts fail
	short, cancel := context.WithTimeout(ctx, time.Second)
	if err := a.Publish(short, live.Signal{Kind: live.KindSettings, Domain: "acme"}); err == nil {
		t.Error("Publish while Redis is down: nil error, want one")
	}
	cancel()
	srv.StartAgain()
	lb.WaitResync(t)
	publishUntilHeard(t, a, lb)
}

// TestRedisUnreachable: Redis stops answering without closing anything
// (SIGSTOP: a host cut off the network looks the same). The quiet
// subscription's ping goes unanswered, Run drops it and tries again, and
// when Redis answers again it calls resynced and signals flow.
func TestRedisUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedis(t, srv.URL(), "a"), newRedis(t, srv.URL(), "b")
	lb := livetest.Listen(t, b)

	srv.Freeze()
	time.Sleep(5 * testHealth) // long enough for the watchdog to give up on the connection
	srv.Thaw()
	lb.WaitResync(t)
	publishUntilHeard(t, a, lb)
}

// TestRedisCallsKeepTheirDeadline: against a silent Redis, each call
// returns an error when its context's deadline passes, not after
// go-redis's own read or dial timeouts (3 s, 5 s): a node checking a
// deadline is held up no longer than it allows.
func TestRedisCallsKeepTheirDeadline(t *testing.T) {
	srv := redistest.Start(t)
	a := newRedis(t, srv.URL(), "a")
	rec := []live.Activity{{Domain: "acme", SessionID: "s1"}}
	if err := a.Record(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	srv.Freeze()
	defer srv.Thaw()
	const allow, most = 300 * time.Millisecond, 2 * time.Second
	for name, call := range map[string]func(context.Context) error{
		"Record": func(ctx context.Context) error { return a.Record(ctx, rec) },
		"Idle":   func(ctx context.Context) error { _, _, err := a.Idle(ctx, "acme", "s1"); return err },
		"Forget": func(ctx context.Context) error { return a.Forget(ctx, "acme", []string{"s2"}) },
		"Publish": func(ctx context.Context) error {
			return a.Publish(ctx, live.Signal{Kind: live.KindSettings, Domain: "acme"})
		},
	} {
		for range 2 { // the second finds no pooled connection: it dials
			ctx, cancel := context.WithTimeout(context.Background(), allow)
			start := time.Now()
			err := call(ctx)
			took := time.Since(start)
			cancel()
			if err == nil || took > most {
				t.Errorf("%s with %v against a frozen Redis: %v after %v, want an error within %v", name, allow, err, took, most)
			}
		}
	}
}

// publishUntilHeard publishes a marker and waits for it.
func publishUntilHeard(t *testing.T, a live.Layer, lb *livetest.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), livetest.Wait)
	defer cancel()
	if err := a.Publish(ctx, live.Signal{Kind: live.KindDomains, Domain: "marker"}); err != nil {
		t.Fatalf("Publish after Redis is back: %v", err)
	}
	for {
		s := lb.Next(t)
		if s.Kind == live.KindDomains && s.Domain == "marker" {
			return
		}
	}
}

func TestNewRedisRefusesBadURLs(t *testing.T) {
	ctx := context.Background()
	for _, url := range []string{
		"http://127.0.0.1:1",
		"redis+ring://127.0.0.1:1",
		"redis://u:s3cret@127.0.0.1:1/notanumber",
		"redis+sentinel://u:s3cret@127.0.0.1:1", // no master_name
		"redis://u:s3cret@127.0.0.1:1?no_such_option=1",
		"redis://u:s3cret@[::1",
	} {
		_, err := live.NewRedis(ctx, live.RedisOptions{URL: url, Node: "a"})
		if err == nil {
			t.Errorf("NewRedis(%s): nil error, want one", url)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("NewRedis(%s): the error shows the password: %v", url, err)
		}
	}
	// A URL that parses but has nobody listening: a clear error, no password.
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := live.NewRedis(short, live.RedisOptions{URL: "redis://u:s3cret@127.0.0.1:1/0?dial_timeout=1s&max_retries=0", Node: "a"})
	if err == nil || !strings.Contains(err.Error(), "does not answer") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("NewRedis with nobody listening: %v, want 'does not answer' without the password", err)
	}
	if _, err := live.NewRedis(ctx, live.RedisOptions{URL: "redis://127.0.0.1:1"}); err == nil {
		t.Error("NewRedis without a node id: nil error, want one")
	}
}

// TestRedisURLForms: each documented URL form reaches the deployment.
func TestRedisURLForms(t *testing.T) {
	srv := redistest.Start(t)
	c := redistest.StartCluster(t)
	sentinel := redistest.StartSentinel(t, srv)
	for _, url := range []string{
		srv.URL(),
		"redis://" + srv.Addr(),
		"redis://" + srv.Addr() + "/0?dial_timeout=2s&read_timeout=2s",
		c.URL(),
		"redis+cluster://" + c.Servers[1].Addr(),
		"redis://" + c.Servers[0].Addr() + "?addr=" + c.Servers[1].Addr(),
		sentinel.URL(),
		"redis://" + sentinel.Addr() + "?master_name=" + sentinel.Master,
	} {
		t.Run(url, func(t *testing.T) {
			a, b := newRedis(t, url, "a"), newRedis(t, url, "b")
			lb := livetest.Listen(t, b)
			d := fmt.Sprintf("url%d", time.Now().UnixNano())
			if err := a.Record(context.Background(), []live.Activity{{Domain: d, SessionID: "s1"}}); err != nil {
				t.Fatal(err)
			}
			if s := lb.Next(t); s.Kind != live.KindActivity {
				t.Fatalf("heard %+v", s)
			}
			if _, ok, err := b.Idle(context.Background(), d, "s1"); err != nil || !ok {
				t.Fatalf("Idle: %v, %v", ok, err)
			}
		})
	}
}

// BenchmarkRecord: one node records batches of 1,000 activities across 100
// domains on a single Redis. It reports the commands Redis counted (INFO
// commandstats) per activity: those the node sent (EVALSHA, SPUBLISH), and
// all of them, with the ones the scripts call (TIME, HMGET, HSET, PEXPIRE).
func BenchmarkRecord(b *testing.B) {
	srv := redistest.Start(b)
	a := newRedis(b, srv.URL(), "a")
	batch := make([]live.Activity, 0, 1000)
	for d := range 100 {
		for s := range 10 {
			batch = append(batch, live.Activity{Domain: fmt.Sprintf("shop%03d", d), SessionID: fmt.Sprintf("session-%03d-%02d", d, s), Ago: time.Duration(s) * 100 * time.Millisecond})
		}
	}
	ctx := context.Background()
	if err := a.Record(ctx, batch); err != nil { // loads the script, warms the pool
		b.Fatal(err)
	}
	before := srv.CommandCalls()
	n := 0
	for b.Loop() {
		if err := a.Record(ctx, batch); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.StopTimer()
	after := srv.CommandCalls()
	var sent, all int64
	for name, calls := range after {
		delta := calls - before[name]
		switch name {
		case "info", "hello", "client", "ping", "command": // the harness's and connection set-up
			continue
		case "evalsha", "eval", "spublish":
			sent += delta
		}
		all += delta
	}
	acts := float64(n * len(batch))
	b.ReportMetric(float64(sent)/acts, "sent-cmds/activity")
	b.ReportMetric(float64(all)/acts, "all-cmds/activity")
	b.ReportMetric(acts/b.Elapsed().Seconds(), "activities/s")
}
