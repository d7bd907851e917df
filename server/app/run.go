// Package app is the idleguard program: its flags, the wiring of the store,
// the idle clock, the hub and the HTTP routes (wire.go), a server's
// lifetime (serve.go), and the user, group and session commands (cli.go).
// server/cmd/idleguard's main calls Run.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"idleguard/server/api"
	"idleguard/server/pos"

	"golang.org/x/crypto/bcrypt"
)

// options are the server's flags.
type options struct {
	addr          string
	dataDir       string
	demo          bool
	minExpiration int64
	maxLifetime   time.Duration
	maxTabs       int
	origins       string
	logLevel      string
	debugAddr     string
	passwordCost  int
	tlsCert       string
	tlsKey        string
	trusted       []netip.Prefix
	domainSuffix  string
	postgres      string // with redis: a node of a cluster
	redis         string
	node          string
	// ready, when set, receives the listening address (tests use :0).
	ready func(addr string)
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("idleguard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.dataDir, "data", orDefault(getenv("IDLEGUARD_DATA"), "./data"), "directory for the SQLite file and the signing key (created 0700)")
	fs.BoolVar(&o.demo, "demo", false, "seed demo users admin, viewer and cashier (password: demo): in domains acme and globex with -domain-suffix, else in default")
	fs.StringVar(&o.domainSuffix, "domain-suffix", "", "serve many domains: a request for acme.pos.example.com (with .pos.example.com) is for domain acme, an unknown one gets 404 (default: one domain, default, on every host)")
	fs.Int64Var(&o.minExpiration, "min-expiration", 60, "lowest Expiration Time accepted, in seconds")
	fs.DurationVar(&o.maxLifetime, "max-lifetime", 0, "end every session this long after sign-in however active (0: no cap)")
	fs.IntVar(&o.maxTabs, "max-tabs", 16, "most sockets (tabs, devices) one session may hold open")
	fs.StringVar(&o.origins, "origins", "", "comma-separated origins allowed to open the socket, e.g. https://pos.example.com (default: the server's own)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "serve pprof and /debug/stats on this address, e.g. 127.0.0.1:6060 (off by default; never expose it)")
	fs.IntVar(&o.passwordCost, "password-cost", bcrypt.DefaultCost, "bcrypt cost of the demo users' password hashes and of sign-in's comparison for unknown names (4-31)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate chain (with -tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the PEM private key of -tls-cert")
	fs.StringVar(&o.postgres, "postgres", getenv("IDLEGUARD_POSTGRES"), "with -redis, run as one node of a cluster: the PostgreSQL URL (as pgx reads it) of the store every node shares, e.g. postgres://idleguard@10.0.0.5/idleguard")
	fs.StringVar(&o.redis, "redis", getenv("IDLEGUARD_REDIS"), "with -postgres: the Redis URL (redis://host:port, redis+cluster://..., redis+sentinel://...?master_name=M) of the live layer every node shares")
	fs.StringVar(&o.node, "node", "", "this node's id in a cluster, unique (default: host name and process id)")
	trusted := fs.String("trusted-proxies", "", "comma-separated addresses or CIDRs of proxies whose X-Forwarded-For and X-Forwarded-Proto are believed, e.g. 127.0.0.1,10.0.0.0/8")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: idleguard [flags]\n       idleguard domain|user|group|session ... (idleguard user -h)\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.minExpiration < 1 || o.minExpiration > pos.MaxExpirationSeconds {
		return o, fmt.Errorf("-min-expiration must be from 1 to %d seconds", pos.MaxExpirationSeconds)
	}
	if o.passwordCost < bcrypt.MinCost || o.passwordCost > bcrypt.MaxCost {
		return o, fmt.Errorf("-password-cost must be from %d to %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	if o.domainSuffix != "" {
		if err := api.ValidDomainSuffix(o.domainSuffix); err != nil {
			return o, errors.New(pos.ErrorMessage(err))
		}
	}
	if (o.postgres == "") != (o.redis == "") {
		return o, errors.New("-postgres and -redis go together: a cluster keeps what must last in PostgreSQL and what is live in Redis; give both, or neither for one node on its own SQLite file")
	}
	if o.node == "" {
		host, _ := os.Hostname()
		o.node = fmt.Sprintf("%s-%d", orDefault(host, "node"), os.Getpid())
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, errors.New("-tls-cert and -tls-key go together")
	}
	var err error
	if o.trusted, err = parsePrefixes(*trusted); err != nil {
		return o, fmt.Errorf("-trusted-proxies: %w", err)
	}
	return o, nil
}

// parsePrefixes reads "10.0.0.0/8,127.0.0.1": CIDRs or single addresses.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Run is the whole program, args[0] being its name: it serves until ctx
// is done, or runs one user, group or session command.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	return RunReady(ctx, args, getenv, stdin, stdout, stderr, nil)
}

// RunReady is Run with a callback that receives the listening address once
// the server accepts connections (tests listen on :0).
func RunReady(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, ready func(addr string)) error {
	if len(args) > 1 && args[1] == "key" {
		return runKey(ctx, args[2:], getenv, stdout, stderr)
	}
	if len(args) > 1 && (args[1] == "domain" || args[1] == "user" || args[1] == "group" || args[1] == "session") {
		return runAdmin(ctx, args[1:], getenv, stdin, stdout, stderr)
	}
	o, err := parseFlags(args[1:], getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	o.ready = ready
	return serve(ctx, o, stdout)
}
