// Command idlecluster is `make run-cluster`: idleguard as a cluster on this
// machine, from Debian's packages. It starts redis-server, a PostgreSQL
// cluster in ./data/cluster (made on first run), three nodes of bin/idleguard
// with the demo domains and nginx in front of them, waits until each answers,
// and on Ctrl-C stops them in the reverse order. With -quick-check it signs
// in and opens sockets through nginx, then stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		// A second Ctrl-C kills idlecluster at once; the kernel then ends
		// every child (their Pdeathsig).
		stop()
	}()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "idlecluster:", err)
		os.Exit(1)
	}
}

// config is idlecluster's flags.
type config struct {
	dir          string // redis/, pg/, nginx/ and node/ inside
	bin          string // the idleguard program
	port         int    // nginx's; the nodes listen on the next three
	redisPort    int
	postgresPort int
	quickCheck   bool
}

// nodes is how many idleguard nodes run behind nginx.
const nodes = 3

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("idlecluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.dir, "dir", "./data/cluster", "directory of the cluster's data: redis/, pg/ (PostgreSQL, made on first run), nginx/ (its generated config and logs), node/ (the nodes' shared -data)")
	fs.StringVar(&c.bin, "bin", "./bin/idleguard", "the idleguard program the nodes run (make build makes it)")
	fs.IntVar(&c.port, "port", 8080, "nginx's port on 127.0.0.1; the nodes listen on the three ports after it")
	fs.IntVar(&c.redisPort, "redis-port", 6380, "redis-server's port on 127.0.0.1")
	fs.IntVar(&c.postgresPort, "postgres-port", 5433, "PostgreSQL's port on 127.0.0.1")
	fs.BoolVar(&c.quickCheck, "quick-check", false, "start everything, sign in as acme's cashier through nginx, open a socket on each node, then stop")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: idlecluster [flags]\n\n"+
			"Runs idleguard as a cluster on this machine: redis-server, PostgreSQL, %d nodes\n"+
			"and nginx in front of them, from Debian's packages (installed when root).\n"+
			"Ctrl-C stops them all.\n\nflags:\n", nodes)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, p := range []int{c.port, c.port + nodes, c.redisPort, c.postgresPort} {
		if p < 1 || p > 65535 {
			return c, fmt.Errorf("port %d is out of range", p)
		}
	}
	return c, nil
}

// run is the whole program, args[0] being its name. It returns nil after
// Ctrl-C has stopped everything, an error if anything failed to start or
// died on its own.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	con := newConsole(stdout)
	bins, err := ensureBinaries(ctx, con)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(cfg.bin); err != nil || fi.IsDir() {
		return fmt.Errorf("%s is missing: run  make build  (make run-cluster does it first)", cfg.bin)
	}
	if err := checkPorts(cfg); err != nil {
		return err
	}
	c := newCluster(cfg, bins, con)
	err = c.start(ctx)
	if err == nil {
		c.printURLs()
		if cfg.quickCheck {
			err = c.quickCheck(ctx)
		} else {
			err = c.wait(ctx)
		}
	}
	if ctx.Err() != nil && !cfg.quickCheck {
		if err != nil {
			con.printf("interrupted while starting: stopping what started")
		}
		err = nil // Ctrl-C: stopping is the point
	}
	return errors.Join(err, c.stop())
}
