// Command idleload measures how many idle POS sockets one idleguard server
// holds and how well it keeps time with them, side by side with a plain
// gorilla/websocket echo server (the baseline) in the same run.
//
//	idleload [flags]          run the whole table (make bench)
//	idleload -quick           the same, with short soaks, for development
//	idleload -domains-only    only the domains table (a setting change in one of 10,000)
//	idleload -cluster         the cluster table: 100,000 sockets on 6 nodes sharing one
//	                          Redis and one PostgreSQL, then one node alone (make bench-cluster)
//	idleload client -plan F   (started by the run) hold a share of the sockets
//	idleload echo             (started by the run) the baseline server
//
// The run builds the real idleguard binary, starts it and the baseline as
// subprocesses on 127.0.0.1, and spreads the sockets over several client
// processes: on this machine a process may hold at most 20,000 open files.
// Every phase is bounded in count and time, and the run stops by itself.
// See docs/BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "client":
		err = runClient(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "echo":
		err = runEcho(os.Args[2:])
	default:
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		var cfg config
		if cfg, err = parseConfig(os.Args[1:]); err == nil {
			err = orchestrate(ctx, cfg)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "idleload:", err)
		os.Exit(1)
	}
}

// config is the run's shape.
type config struct {
	sockets    int           // per server
	clients    int           // client processes
	late       int           // sessions whose deadlines share one second
	settle     time.Duration // after the last socket opened, before the first measure
	soak       time.Duration // idle time between the two memory measures
	warm       time.Duration // activity before the throughput window
	window     time.Duration // the throughput window
	rate       float64       // activity frames a second per socket
	serverBin  string
	serverEnv  []string
	keep       bool
	profileDir string
	jsonOut    string
	// The domains table: a setting change in one of many small domains,
	// against the same change in one big domain, on one server.
	domains       int // small domains, two sessions each; 0 skips the table
	domainChanges int // changes measured in each of the two domains
	domainsOnly   bool
	// The cluster table, instead of the others: nodes sharing one Redis
	// and one PostgreSQL, then (single) one node on its own.
	cluster        bool
	nodes          int
	clusterSockets int // in all, two a session
	clusterRates   []float64
	single         bool
}

func parseConfig(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("idleload", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "development run: 20 s soak, 5 s settle, 4 s throughput windows, 3 setting changes a domain")
	fs.IntVar(&c.sockets, "sockets", 19000, "sockets per server (clamped to the servers' open-files limit minus 500)")
	fs.IntVar(&c.clients, "clients", 4, "client processes (raised if the sockets do not fit their open-files limit)")
	fs.IntVar(&c.late, "late", 5000, "sessions whose deadlines fall within the same second")
	fs.DurationVar(&c.settle, "settle", 10*time.Second, "wait after connecting before the first memory measure")
	fs.DurationVar(&c.soak, "soak", 5*time.Minute, "idle soak between the memory measures")
	fs.DurationVar(&c.warm, "warm", 2*time.Second, "activity before each throughput window opens")
	fs.DurationVar(&c.window, "window", 6*time.Second, "throughput window of each rate step")
	fs.Float64Var(&c.rate, "rate", 18, "activity frames a second per socket (the server allows 20)")
	fs.StringVar(&c.serverBin, "server-bin", "", "idleguard binary to run (default: go build ./server/cmd/idleguard into the run's temp dir)")
	fs.Func("server-env", "add NAME=VALUE to idleguard's environment (repeatable), e.g. GOGC=50 for an experiment", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want NAME=VALUE")
		}
		c.serverEnv = append(c.serverEnv, v)
		return nil
	})
	fs.BoolVar(&c.keep, "keep", false, "keep the run's temp dir (data, logs, plans)")
	fs.StringVar(&c.profileDir, "profile-dir", "", "save the servers' heap and goroutine profiles after the soak and CPU profiles of the throughput window and of the domains table's changes here (with -cluster: CPU profiles of the first node in every phase)")
	fs.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file")
	fs.IntVar(&c.domains, "domains", 10000, "domains table: shops of two sessions each beside one chain of 20,000 (0: skip the table)")
	fs.IntVar(&c.domainChanges, "domain-changes", 5, "domains table: setting changes measured in each of the two domains, alternating values")
	fs.BoolVar(&c.domainsOnly, "domains-only", false, "run only the domains table")
	fs.BoolVar(&c.cluster, "cluster", false, "run the cluster table instead (make bench-cluster): -nodes nodes sharing one redis-server and one PostgreSQL, then one node alone with one node's share")
	fs.IntVar(&c.nodes, "nodes", 6, "cluster table: nodes")
	fs.IntVar(&c.clusterSockets, "cluster-sockets", 100000, "cluster table: sockets in all, two tabs a session on two different nodes")
	rates := fs.String("cluster-rates", "0.2,1,2,5", "cluster table: activity frames a second per socket, the steps in order (a till sends at most one every 5 s at long Expiration Times: 0.2)")
	fs.BoolVar(&c.single, "single", true, "cluster table: also run one node on its own SQLite file with one node's share of the sockets, for the figures beside the cluster's")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, f := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 || r > 20 {
			return c, fmt.Errorf("-cluster-rates: %q is not a rate above 0 and at most 20", f)
		}
		c.clusterRates = append(c.clusterRates, r)
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["soak"] {
			c.soak = 20 * time.Second
		}
		if !set["settle"] {
			c.settle = 5 * time.Second
		}
		if !set["window"] {
			c.window = 4 * time.Second
		}
		if !set["domain-changes"] {
			c.domainChanges = 3
		}
	}
	switch {
	case c.sockets < 1 || c.clients < 1:
		return c, fmt.Errorf("-sockets and -clients must be positive")
	case c.late < 0 || c.late > c.sockets:
		return c, fmt.Errorf("-late must be from 0 to -sockets")
	case c.rate <= 0 || c.rate > 20:
		return c, fmt.Errorf("-rate must be above 0 and at most 20 (the server's per-socket limit)")
	case c.domains < 0 || c.domains > 100000:
		return c, fmt.Errorf("-domains must be from 0 to 100000")
	case c.domainChanges < 1:
		return c, fmt.Errorf("-domain-changes must be positive")
	case c.domainsOnly && c.domains == 0:
		return c, fmt.Errorf("-domains-only needs -domains above 0")
	case c.cluster && (c.nodes < 2 || c.clusterSockets < 2*c.nodes):
		return c, fmt.Errorf("-cluster needs -nodes of 2 or more and -cluster-sockets of at least two a node")
	}
	return c, nil
}
