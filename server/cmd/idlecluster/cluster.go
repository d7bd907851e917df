package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// startWait bounds how long one stage may take to answer: PostgreSQL's
// first start includes initdb, a node's its migrations and demo users.
const startWait = 60 * time.Second

// cluster is the running processes, in stages: redis, PostgreSQL, the
// nodes, nginx. Each stage starts once the one before answers; they stop
// in the reverse order, the processes of one stage together.
type cluster struct {
	cfg    config
	bins   binaries
	con    *console
	stages [][]*child
	died   chan *child // every child that exits, in the order they do
}

func newCluster(cfg config, bins binaries, con *console) *cluster {
	return &cluster{cfg: cfg, bins: bins, con: con, died: make(chan *child, 2*nodes+3)}
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func (c *cluster) redisURL() string { return "redis://" + addr(c.cfg.redisPort) + "/0" }

func (c *cluster) postgresURL(database string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgUser, addr(c.cfg.postgresPort), database)
}

func nodePort(cfg config, i int) int { return cfg.port + 1 + i }

// start brings the stages up one after the other.
func (c *cluster) start(ctx context.Context) error {
	dir, err := filepath.Abs(c.cfg.dir)
	if err != nil {
		return err
	}
	c.cfg.dir = dir
	// 0711: PostgreSQL and nginx's workers run as other users and must pass
	// through it to their own directories; nobody may list it.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if perm := fi.Mode().Perm(); perm&0o011 != 0o011 {
		if err := os.Chmod(dir, perm|0o011); err != nil {
			return err
		}
	}
	for _, stage := range []func(context.Context) error{c.startRedis, c.startPostgres, c.startNodes, c.startNginx} {
		if err := stage(ctx); err != nil {
			return err
		}
	}
	return nil
}

// add records a started stage and watches its children.
func (c *cluster) add(stage ...*child) {
	c.stages = append(c.stages, nil)
	c.join(stage...)
}

// join adds children to the last stage and watches them.
func (c *cluster) join(children ...*child) {
	last := len(c.stages) - 1
	c.stages[last] = append(c.stages[last], children...)
	for _, ch := range children {
		go func() {
			<-ch.exited
			c.died <- ch
		}()
	}
}

// wait returns when ctx is done (nil) or a child exits on its own (an
// error naming it).
func (c *cluster) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		c.con.printf("stopping: nginx, the nodes, PostgreSQL, redis")
		return nil
	case ch := <-c.died:
		return fmt.Errorf("%s exited by itself (%s): stopping the rest", ch.name, ch.status())
	}
}

// stop stops every stage, the last first, and reports what would not stop.
func (c *cluster) stop() error {
	var errs []error
	for i := len(c.stages) - 1; i >= 0; i-- {
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		for _, ch := range c.stages[i] {
			wg.Go(func() {
				if err := ch.stop(c.con); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	c.stages = nil
	return errors.Join(errs...)
}

// ready polls probe until it succeeds. It fails when a child of the
// cluster exits, ctx is done or startWait has passed.
func (c *cluster) ready(ctx context.Context, what string, probe func(context.Context) error) error {
	deadline := time.Now().Add(startWait)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case ch := <-c.died:
			return fmt.Errorf("%s exited while starting (%s): see its lines above", ch.name, ch.status())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v: %w", what, startWait, err)
		}
	}
}

// startRedis runs redis-server with nothing on disk: what the live layer
// holds is rebuilt from PostgreSQL and the nodes when it restarts.
func (c *cluster) startRedis(ctx context.Context) error {
	dir := filepath.Join(c.cfg.dir, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(c.bins.redis,
		"--port", strconv.Itoa(c.cfg.redisPort), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "notice")
	ch, err := startChild(c.con, "redis", cmd, syscall.SIGTERM, syscall.SIGTERM, nil)
	if err != nil {
		return err
	}
	c.add(ch)
	rc := redis.NewClient(&redis.Options{Addr: addr(c.cfg.redisPort), MaxRetries: -1, DialTimeout: time.Second})
	defer rc.Close()
	if err := c.ready(ctx, "redis-server", func(ctx context.Context) error { return rc.Ping(ctx).Err() }); err != nil {
		return err
	}
	c.con.printf("redis is ready on %s", c.redisURL())
	return nil
}

// startNodes runs the nodes, each on its port, all with the demo domains,
// one after the other: each waits for the one before to answer /healthz.
// (Started together on a fresh database, they collide seeding the demo
// groups: PostgreSQL's PutGroup is not safe against itself.)
func (c *cluster) startNodes(ctx context.Context) error {
	// One -data for every node, so that whatever a node keeps on disk is
	// the same for all: the signing key file, where the build at hand does
	// not keep the keys in PostgreSQL.
	data := filepath.Join(c.cfg.dir, "node")
	c.add()
	for i := range nodes {
		name := "node" + strconv.Itoa(i+1)
		cmd := exec.Command(c.cfg.bin,
			"-addr", addr(nodePort(c.cfg, i)), "-node", name,
			"-postgres", c.postgresURL(pgDatabase), "-redis", c.redisURL(),
			"-domain-suffix", ".localhost", "-demo",
			"-trusted-proxies", "127.0.0.1", "-data", data)
		ch, err := startChild(c.con, name, cmd, syscall.SIGTERM, syscall.SIGTERM, nil)
		if err != nil {
			return err
		}
		c.join(ch)
		if err := c.ready(ctx, name, healthz("http://"+addr(nodePort(c.cfg, i))+"/healthz", "")); err != nil {
			return err
		}
		c.con.printf("%s is ready on http://%s", name, addr(nodePort(c.cfg, i)))
	}
	return nil
}

// healthz is a probe that GETs url (with host as the Host header when not
// empty) and wants 200.
func healthz(url, host string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return err
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// printURLs says where the shops are.
func (c *cluster) printURLs() {
	c.con.printf("ready: nginx on 127.0.0.1:%d in front of %d nodes (ports %d-%d), redis on %d, PostgreSQL on %d (%s)",
		c.cfg.port, nodes, nodePort(c.cfg, 0), nodePort(c.cfg, nodes-1), c.cfg.redisPort, c.cfg.postgresPort, c.postgresURL(pgDatabase))
	for _, shop := range []string{"acme", "globex"} {
		c.con.printf("  http://%s.localhost:%d", shop, c.cfg.port)
	}
	c.con.printf("  users admin, viewer and cashier, password demo, in each shop")
	if !c.cfg.quickCheck {
		c.con.printf("Ctrl-C stops them all")
	}
}
