// Command idleguard serves a POS's inactivity sign-out: the login, the
// Developer Configuration JWT tab, the socket every POS page keeps open, and
// the idle clock that signs sessions out when their Expiration Time passes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"idleguard/server/api"
	"idleguard/server/clock"
	"idleguard/server/datadir"
	"idleguard/server/guard"
	"idleguard/server/hub"
	"idleguard/server/seclog"
	"idleguard/server/sessions"
	"idleguard/server/sqlite"
	"idleguard/server/token"
	"idleguard/web"
)

func main() {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "idleguard:", err)
		os.Exit(1)
	}
}

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
	tlsCert       string
	tlsKey        string
	trusted       []netip.Prefix
	// ready, when set, receives the listening address (tests use :0).
	ready func(addr string)
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("idleguard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.dataDir, "data", orDefault(getenv("IDLEGUARD_DATA"), "./data"), "directory for the SQLite file and the signing key (created 0700)")
	fs.BoolVar(&o.demo, "demo", false, "seed demo users admin, viewer and cashier (password: demo)")
	fs.Int64Var(&o.minExpiration, "min-expiration", 60, "lowest Expiration Time accepted, in seconds")
	fs.DurationVar(&o.maxLifetime, "max-lifetime", 0, "end every session this long after sign-in however active (0: no cap)")
	fs.IntVar(&o.maxTabs, "max-tabs", 16, "most sockets (tabs, devices) one session may hold open")
	fs.StringVar(&o.origins, "origins", "", "comma-separated origins allowed to open the socket, e.g. https://pos.example.com (default: the server's own)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "serve pprof and /debug/stats on this address, e.g. 127.0.0.1:6060 (off by default; never expose it)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate chain (with -tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the PEM private key of -tls-cert")
	trusted := fs.String("trusted-proxies", "", "comma-separated addresses or CIDRs of proxies whose X-Forwarded-For and X-Forwarded-Proto are believed, e.g. 127.0.0.1,10.0.0.0/8")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: idleguard [flags]\n       idleguard user|group ... (idleguard user -h)\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.minExpiration < 1 || o.minExpiration > guard.MaxExpirationSeconds {
		return o, fmt.Errorf("-min-expiration must be from 1 to %d seconds", guard.MaxExpirationSeconds)
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

// run is the whole program; tests call it with their own arguments.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runWith(ctx, args, getenv, stdin, stdout, stderr, nil)
}

// runWith is run with a ready callback that receives the listening address
// once the server accepts connections (tests listen on :0).
func runWith(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, ready func(addr string)) error {
	if len(args) > 1 && (args[1] == "user" || args[1] == "group" || args[1] == "session") {
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

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// openStore creates the data directory (0700, or refuses or tightens an
// existing one, package datadir) and opens the SQLite file.
func openStore(ctx context.Context, dir string) (*sqlite.DB, error) {
	if err := datadir.Ensure(dir); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "idleguard.db"))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}

// app is the wired program: the store, the sessions service, the hub and
// the HTTP handler in front of them.
type app struct {
	db      *sqlite.DB
	svc     *sessions.Service
	hub     *hub.Hub
	handler http.Handler
	sec     *seclog.Log
}

// newApp opens the store and wires everything serve needs; the caller
// closes a.db. Tests build the same handler with it.
func newApp(ctx context.Context, o options, log *slog.Logger) (a *app, err error) {
	db, err := openStore(ctx, o.dataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if o.demo {
		if err := seedDemo(ctx, db); err != nil {
			return nil, err
		}
	}
	key, err := token.LoadOrCreateKey(o.dataDir)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	clk := clock.Real{}
	sec := seclog.New(log, clk)
	tokens := token.New(key, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience, Now: clk.Now})
	svc, err := sessions.New(ctx, log, clk, db, tokens, sessions.Config{
		MinExpirationSeconds: o.minExpiration,
		MaxLifetime:          o.maxLifetime,
		Security:             sec,
	})
	if err != nil {
		return nil, err
	}
	h := hub.New(log, hub.Config{MaxPerSession: o.maxTabs, Refused: func(sid, why string) {
		sec.Event(seclog.FrameRefused, slog.String("sid", sessions.ShortID(sid)), slog.String("why", why))
	}})
	svc.SetSockets(h)
	assets, err := web.NewAssets()
	if err != nil {
		return nil, fmt.Errorf("web assets: %w", err)
	}
	var origins []string
	for _, s := range strings.Split(o.origins, ",") {
		if s = strings.TrimSpace(s); s != "" {
			origins = append(origins, s)
		}
	}
	handler := api.NewServer(log, api.Config{AllowedOrigins: origins, TrustedProxies: o.trusted, Security: sec}, svc, h, assets)
	return &app{db: db, svc: svc, hub: h, handler: handler, sec: sec}, nil
}

func serve(ctx context.Context, o options, stdout io.Writer) error {
	log := newLogger(stdout, o.logLevel)
	a, err := newApp(ctx, o, log)
	if err != nil {
		return err
	}
	defer a.db.Close()
	svc, h := a.svc, a.hub
	if o.debugAddr != "" {
		stopDebug, err := startDebug(log, o.debugAddr, h, svc)
		if err != nil {
			return err
		}
		defer stopDebug()
	}

	var tlsConfig *tls.Config
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http://"
	if tlsConfig != nil {
		// The hub reads frames off the TLS connection (read.go), so the
		// listener itself speaks TLS rather than http.Server.ServeTLS.
		ln, scheme = tls.NewListener(ln, tlsConfig), "https://"
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", scheme+ln.Addr().String(), "data", o.dataDir, "demo", o.demo)
	if o.ready != nil {
		o.ready(ln.Addr().String())
	}

	flushCtx, stopFlush := context.WithCancel(context.Background())
	flushed := make(chan error, 1)
	go func() { flushed <- svc.Run(flushCtx) }()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err = <-served:
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Stop taking requests, tell open pages "going away" (they reconnect
	// to whichever server comes next), then write the last activity.
	srv.Shutdown(shutdownCtx)
	h.Shutdown(shutdownCtx)
	stopFlush()
	if ferr := <-flushed; ferr != nil {
		log.Error("final flush", "err", ferr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("stopped")
	return err
}
