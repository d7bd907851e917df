package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"idleguard/server/postgres"
	"idleguard/server/token"
)

// The cluster table (issue 10, Capacity): 100,000 sockets as 6 nodes of
// about 16,700 sharing one Redis and one PostgreSQL, every session with
// two tabs on two different nodes; then, in the same run, one node on its
// own SQLite file holding one node's share (16,667 sockets, two tabs a
// session), for the figures the cluster is judged against. Both go through
// the same phases (runFleet): prepare the store, start, connect, settle,
// one setting change that is both the fan-out and, 38 s later, the
// sign-out second of a group of sessions, activity in steps of rising
// rates, close. Every phase has a count and a time limit.

// fleetShape is one of the two runs.
type fleetShape struct {
	Name     string // "cluster" or "single"
	Nodes    int
	Sessions int // two tabs each
	Late     int // sessions whose deadlines fall in one second
	Cluster  bool
}

// tabNode is the node of session i's tab (0 or 1) among n nodes: the
// first tab on i % n, the second on each of the other nodes in turn, so
// that every node holds as many tabs as the next and every pair of nodes
// shares sessions.
func tabNode(i, tab, n int) int {
	if n == 1 {
		return 0
	}
	a := i % n
	if tab == 0 {
		return a
	}
	return (a + 1 + (i/n)%(n-1)) % n
}

// fleet is a running shape: its engines, nodes and clients.
type fleet struct {
	shape   fleetShape
	dir     string
	redis   *redisEngine // nil for the single node
	pg      *pgEngine
	nodes   []*server
	logs    []string
	clients []*clientProc
	ds      *dataset
	// perNode is how many sockets the plans put on each node.
	perNode []int
	res     *fleetResult
}

// phase records that the run enters a phase now, so that a socket's end
// can be placed in one.
func (f *fleet) phase(name string) {
	f.res.Phases = append(f.res.Phases, phaseMark{Name: name, At: time.Now().UnixNano()})
}

// runFleet runs one shape and returns its figures.
func runFleet(ctx context.Context, cfg config, env bench, shape fleetShape) (res *fleetResult, err error) {
	f := &fleet{shape: shape, dir: filepath.Join(env.tmp, shape.Name)}
	res = &fleetResult{Shape: shape, Sockets: 2 * shape.Sessions}
	f.res = res
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return nil, err
	}
	defer f.stop()
	t0 := time.Now()

	// The engines and the store.
	if shape.Cluster {
		logf("%s: starting redis-server and PostgreSQL (initdb) in %s", shape.Name, f.dir)
		if f.redis, err = startRedis(ctx, f.dir); err != nil {
			return nil, err
		}
		if f.pg, err = startPostgres(ctx, f.dir); err != nil {
			return nil, err
		}
		if in, err := f.redis.info(ctx); err == nil {
			res.RedisMemBefore = in.Memory // empty, no node connected
		}
		res.EnginesSeconds = since(t0).Seconds()
	}
	t0 = time.Now()
	if err := f.prepare(ctx); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	res.PrepareSeconds = since(t0).Seconds()
	logf("%s: store of %d sessions (%d in the sign-out group) and their tokens in %.1f s", shape.Name, shape.Sessions, shape.Late, res.PrepareSeconds)

	// The nodes, all at once.
	t0 = time.Now()
	if err := f.startNodes(cfg, env); err != nil {
		return nil, err
	}
	res.StartSeconds = since(t0).Seconds()
	res.Nodes = make([]nodeResult, len(f.nodes))
	for k, n := range f.nodes {
		nr := &res.Nodes[k]
		nr.Name, nr.PID = n.name, n.pid()
		if nr.OpenFiles, err = openFilesLimit(n.pid()); err != nil {
			return nil, err
		}
		st, err := n.stats(false)
		if err != nil {
			return nil, err
		}
		nr.Sessions = st.Sessions
	}
	logf("%s: %d nodes up in %.1f s, each tracking %d live sessions", shape.Name, len(f.nodes), res.StartSeconds, res.Nodes[0].Sessions)

	// The administrator signs in for real (bcrypt), on the first node.
	loginBody, _ := json.Marshal(map[string]string{"username": f.ds.adminName, "password": f.ds.adminPass})
	b, err := post("POST", "http://"+f.nodes[0].addr+"/api/login", "", "application/json", loginBody)
	if err != nil {
		return nil, fmt.Errorf("admin login: %w", err)
	}
	var login struct{ Token string }
	if err := json.Unmarshal(b, &login); err != nil || login.Token == "" {
		return nil, fmt.Errorf("admin login: no token in %s", b)
	}

	// Baseline: RSS with every session loaded and no socket open.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	if err := f.sampleNodes(func(k int, s sample) { res.Nodes[k].Base = s }); err != nil {
		return nil, err
	}

	// Plans and clients.
	if err := f.startClients(env); err != nil {
		return nil, err
	}
	res.Clients = len(f.clients)
	for k := range res.Nodes {
		res.Nodes[k].Planned = f.perNode[k]
	}
	logf("%s: connecting %d sockets (%d sessions, two tabs each) to %d nodes from %d client processes", shape.Name, res.Sockets, shape.Sessions, len(f.nodes), len(f.clients))
	t0 = time.Now()
	c0, n0 := clientsCPU(f.clients), f.nodesCPU()
	ra, pa := f.engineSample(ctx)
	f.phase("connect")
	profiled := f.profile(cfg, "connect", 10)
	reps, err := all(f.clients, command{Cmd: "connect"})
	if err != nil {
		return nil, err
	}
	for _, r := range reps {
		res.ConnectFailed += r.Failed
		if r.Failed > 0 {
			logf("client %d: %d sockets failed, first: %s", r.Client, r.Failed, r.Err)
		}
	}
	res.ConnectSeconds = since(t0).Seconds()
	for k, n := range f.nodes {
		waitSockets(n, f.perNode[k], 60*time.Second)
	}
	<-profiled
	rb, pb := f.engineSample(ctx)
	res.ConnectCPU = fleetCPU{Nodes: f.nodesCPU() - n0, Clients: clientsCPU(f.clients) - c0, Redis: rb.CPU - ra.CPU, PG: pb.CPU - pa.CPU}
	_, res.ConnectPG = f.engineDelta(ra, rb, pa, pb, since(t0).Seconds())
	logf("%s: connected in %.1f s (%d failed); CPU s: nodes %.1f, clients %.1f, Redis %.1f, PostgreSQL %.1f; PostgreSQL statements %s",
		shape.Name, res.ConnectSeconds, res.ConnectFailed, res.ConnectCPU.Nodes, res.ConnectCPU.Clients, res.ConnectCPU.Redis, res.ConnectCPU.PG, res.ConnectPG.statements())

	// Settle; the nodes' and engines' idle load over the same time.
	f.phase("settle")
	ra, pa = f.engineSample(ctx)
	n0 = f.nodesCPU()
	settleAt := time.Now()
	if err := sleep(ctx, cfg.settle); err != nil {
		return nil, err
	}
	rb, pb = f.engineSample(ctx)
	res.IdleNodesCPU = (f.nodesCPU() - n0) / since(settleAt).Seconds()
	// Every node has recorded every session it tracks by now (on
	// subscribing: live layer "rerecord").
	res.RedisMemAfter = rb.Memory
	if f.redis != nil {
		res.RedisSessions, _ = f.redis.rc.HLen(ctx, "ig:{default}:last").Result()
	}
	res.IdleRedis, res.IdlePG = f.engineDelta(ra, rb, pa, pb, since(settleAt).Seconds())
	if err := f.sampleNodes(func(k int, s sample) { res.Nodes[k].Settle = s }); err != nil {
		return nil, err
	}
	for k := range res.Nodes {
		res.Nodes[k].Held = res.Nodes[k].Settle.Stats.Sockets
	}
	logf("%s: settled: %s", shape.Name, res.rssLine())

	if err := f.timing(ctx, cfg, res, login.Token); err != nil {
		return nil, err
	}
	if err := f.activity(ctx, cfg, res); err != nil {
		return nil, err
	}
	reps, err = all(f.clients, command{Cmd: "report"})
	if err != nil {
		return nil, err
	}
	res.countCloses(f, reps)

	// Close everything: every node must count none.
	f.phase("close")
	logf("%s: closing every socket", shape.Name)
	if _, err := all(f.clients, command{Cmd: "close"}); err != nil {
		return nil, err
	}
	for _, n := range f.nodes {
		waitSockets(n, 0, 30*time.Second)
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	if err := f.sampleNodes(func(k int, s sample) { res.Nodes[k].Closed = s }); err != nil {
		return nil, err
	}
	for k, n := range f.nodes {
		select {
		case <-n.exited:
			res.Nodes[k].Exited = fmt.Sprint(n.waitErr)
		default:
		}
	}
	return res, nil
}

// prepare writes the data set: into PostgreSQL through server/postgres
// (8 writers at once, without waiting for each commit to reach the disk),
// tokens minted with the cluster's signing key (token.KeyRing:
// EnsureSigningKey, then SigningKeys), or into the single node's SQLite
// file with its key file.
func (f *fleet) prepare(ctx context.Context) error {
	if !f.shape.Cluster {
		dir := f.nodeDir(0)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		var err error
		f.ds, err = prepare(ctx, dir, f.shape.Sessions, f.shape.Late)
		return err
	}
	db, err := postgres.Open(ctx, f.pg.url(pgDatabase)+"&synchronous_commit=off")
	if err != nil {
		return err
	}
	defer db.Close()
	ring, err := token.NewKeyRing(ctx, db, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience})
	if err != nil {
		return err
	}
	f.ds, err = fill(ctx, db, ring.Issuer(), f.shape.Sessions, f.shape.Late, 8)
	return err
}

func (f *fleet) nodeDir(k int) string { return filepath.Join(f.dir, fmt.Sprintf("node%d", k+1)) }

// startNodes starts every node at once and waits for each to answer.
func (f *fleet) startNodes(cfg config, env bench) error {
	ports, err := freePorts(2 * f.shape.Nodes)
	if err != nil {
		return err
	}
	f.nodes = make([]*server, f.shape.Nodes)
	f.logs = make([]string, f.shape.Nodes)
	errs := make([]error, f.shape.Nodes)
	var wg sync.WaitGroup
	for k := range f.shape.Nodes {
		name := fmt.Sprintf("node%d", k+1)
		if !f.shape.Cluster {
			name = "single"
		}
		addr, debug := ports[2*k], ports[2*k+1]
		if err := os.MkdirAll(f.nodeDir(k), 0o700); err != nil {
			return err
		}
		args := []string{env.bin, "-addr", addr, "-debug-addr", debug, "-data", f.nodeDir(k),
			"-min-expiration", "1", "-max-tabs", "16"}
		if f.shape.Cluster {
			args = append(args, "-postgres", f.pg.url(pgDatabase), "-redis", f.redis.url, "-node", name)
		}
		f.logs[k] = filepath.Join(f.dir, name+".log")
		wg.Go(func() {
			f.nodes[k], errs[k] = startServerWithin(3*time.Minute, name, cfg.serverEnv, args, f.logs[k], addr, debug)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// freePorts finds n distinct ports on 127.0.0.1, holding each until all
// are found.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// startClients writes the plans, a session's two tabs on their two nodes,
// and starts the clients: as many as the sockets need under the open-files
// limit less 500, at least the configured number.
func (f *fleet) startClients(env bench) error {
	n := 2 * f.shape.Sessions
	p := 4
	if need := (n + env.soft - 501) / (env.soft - 500); p < need {
		p = need
	}
	plans := make([]plan, p)
	for c := range plans {
		plans[c] = plan{Client: c}
	}
	f.perNode = make([]int, len(f.nodes))
	for j := range n {
		i, tab := j/2, j%2
		k := tabNode(i, tab, len(f.nodes))
		f.perNode[k]++
		c := &plans[j%p]
		c.Sockets = append(c.Sockets, planSocket{I: j, Srv: "ig", Token: f.ds.tokens[i], Late: f.ds.late[i], URL: "ws://" + f.nodes[k].addr + "/ws"})
	}
	for k, m := range f.perNode {
		if lim, _ := openFilesLimit(f.nodes[k].pid()); m > lim-500 {
			return fmt.Errorf("%s: %d sockets do not fit its open-files limit of %d", f.nodes[k].name, m, lim)
		}
	}
	for c := range plans {
		path := filepath.Join(f.dir, fmt.Sprintf("plan%d.json", c))
		b, _ := json.Marshal(plans[c])
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
		cp, err := startClient(env.self, c, path, filepath.Join(f.dir, fmt.Sprintf("client%d.log", c)))
		if err != nil {
			return err
		}
		f.clients = append(f.clients, cp)
	}
	return nil
}

// stop ends the clients, then the nodes (together), then PostgreSQL and
// Redis.
func (f *fleet) stop() {
	stopClients(f.clients)
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		if n != nil {
			wg.Go(n.stop)
		}
	}
	wg.Wait()
	f.pg.stop()
	f.redis.stop()
}

// sampleNodes samples every node and hands each sample to put.
func (f *fleet) sampleNodes(put func(k int, s sample)) error {
	for k, n := range f.nodes {
		s, err := n.sample(false)
		if err != nil {
			return fmt.Errorf("%s: %w", n.name, err)
		}
		put(k, s)
	}
	return nil
}

// nodesSample is the nodes' frames read and CPU used, summed.
type nodesSample struct {
	At     time.Time
	Frames uint64
	CPU    float64
}

func (f *fleet) nodesNow() (nodesSample, error) {
	s := nodesSample{At: time.Now()}
	for _, n := range f.nodes {
		st, err := n.stats(false)
		if err != nil {
			return s, fmt.Errorf("%s: %w", n.name, err)
		}
		s.Frames += st.Frames
		s.CPU += cpuOf(n)
	}
	return s, nil
}

// engineSample reads Redis and PostgreSQL (zero values for the single
// node, or if a read fails: the figure then shows as missing).
func (f *fleet) engineSample(ctx context.Context) (redisInfo, pgStats) {
	var ri redisInfo
	var ps pgStats
	if f.redis != nil {
		if in, err := f.redis.info(ctx); err == nil {
			ri = in
		} else {
			logf("redis INFO: %v", err)
		}
	}
	if f.pg != nil {
		if s, err := f.pg.sample(ctx); err == nil {
			ps = s
		} else {
			logf("PostgreSQL statistics: %v", err)
		}
	}
	return ri, ps
}

func (f *fleet) engineDelta(ra, rb redisInfo, pa, pb pgStats, secs float64) (redisDelta, pgDelta) {
	return diffRedis(ra, rb, secs), diffPG(pa, pb, secs)
}

// clusterShapes are the two runs of the table: the cluster of cfg.nodes
// nodes holding cfg.clusterSockets, and one node holding one node's share.
func clusterShapes(cfg config) []fleetShape {
	sessions := cfg.clusterSockets / 2
	cl := fleetShape{Name: "cluster", Nodes: cfg.nodes, Sessions: sessions, Late: min(cfg.late, sessions), Cluster: true}
	one := (sessions + cfg.nodes - 1) / cfg.nodes
	single := fleetShape{Name: "single", Nodes: 1, Sessions: one,
		Late: min(one, (cl.Late*one+sessions-1)/sessions)} // the same share of sessions due at once
	out := []fleetShape{cl}
	if cfg.single {
		out = append(out, single)
	}
	return out
}

// runClusterTable runs the shapes one after the other.
func runClusterTable(ctx context.Context, cfg config, env bench) (*clusterResult, error) {
	out := &clusterResult{Started: time.Now(), Code: gitDescribe(), Config: fmt.Sprintf("-cluster -nodes %d -cluster-sockets %d -late %d -cluster-rates %v -settle %v -warm %v -window %v -single=%v",
		cfg.nodes, cfg.clusterSockets, cfg.late, cfg.clusterRates, cfg.settle, cfg.warm, cfg.window, cfg.single)}
	for _, shape := range clusterShapes(cfg) {
		r, err := runFleet(ctx, cfg, env, shape)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", shape.Name, err)
		}
		r.Logs = scanNodeLogs(filepath.Join(env.tmp, shape.Name), len(r.Nodes), shape, r.PutAt, r.SignOutAt)
		out.Runs = append(out.Runs, r)
	}
	out.Seconds = since(out.Started).Seconds()
	return out, nil
}

// gitDescribe names the code measured: the commit, and -dirty when the
// work tree has changes ("?" outside a git checkout).
func gitDescribe() string {
	b, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// nodeName is the name runFleet gave node k.
func nodeName(shape fleetShape, k int) string {
	if !shape.Cluster {
		return "single"
	}
	return "node" + strconv.Itoa(k+1)
}
