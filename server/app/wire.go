package app

import (
	"context"
	"fmt"
	"idleguard/server/api"
	"idleguard/server/clock"
	"idleguard/server/datadir"
	"idleguard/server/hub"
	"idleguard/server/live"
	"idleguard/server/pos"
	"idleguard/server/postgres"
	"idleguard/server/seclog"
	"idleguard/server/sessions"
	"idleguard/server/sqlite"
	"idleguard/server/token"
	"idleguard/web"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
)

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// openStore opens the durable store: PostgreSQL when pgURL is set (a
// cluster's), else the SQLite file in the data directory, created 0700 (or
// an existing one refused or tightened, package datadir).
func openStore(ctx context.Context, dir, pgURL string) (pos.Store, error) {
	if pgURL != "" {
		db, err := postgres.Open(ctx, pgURL)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return db, nil
	}
	if err := datadir.Ensure(dir); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}

// app is the wired program: the store, the sessions service, the hub and
// the HTTP handler in front of them.
type app struct {
	db      pos.Store
	layer   live.Layer     // nil on a single node
	keys    *token.KeyRing // nil on a single node
	svc     *sessions.Service
	hub     *hub.Hub
	handler http.Handler
	sec     *seclog.Log
}

// newApp opens the store and wires everything serve needs; the caller
// closes a.db. Tests build the same handler with it.
func newApp(ctx context.Context, o options, log *slog.Logger) (a *app, err error) {
	db, err := openStore(ctx, o.dataDir, o.postgres)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if o.demo {
		domains := []string{pos.DefaultDomain}
		if o.domainSuffix != "" {
			domains = demoDomains
		}
		if err := seedDemo(ctx, db, domains, o.passwordCost); err != nil {
			return nil, err
		}
	}
	clk := clock.Real{}
	sec := seclog.New(log, clk)
	tokens, ring, err := signingKeys(ctx, o, db, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience, Now: clk.Now})
	if err != nil {
		return nil, err
	}
	// The hub first: the service's idle clocks may sign a restored session
	// out the moment they start.
	h := hub.New(log, hub.Config{MaxPerSession: o.maxTabs, Refused: func(sid, why string) {
		sec.Event(seclog.FrameRefused, slog.String("sid", sessions.ShortID(sid)), slog.String("why", why))
	}})
	var layer live.Layer
	if o.redis != "" {
		r, err := live.NewRedis(ctx, live.RedisOptions{URL: o.redis, Node: o.node, Log: log})
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		layer = r
		defer func() {
			if err != nil {
				r.Close()
			}
		}()
	}
	svc, err := sessions.New(ctx, log, clk, db, tokens, h, sessions.Config{
		Live:                 layer,
		MinExpirationSeconds: o.minExpiration,
		MaxLifetime:          o.maxLifetime,
		Security:             sec,
		PasswordCost:         o.passwordCost,
	})
	if err != nil {
		return nil, err
	}
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
	handler := api.NewServer(log, api.Config{AllowedOrigins: origins, TrustedProxies: o.trusted, DomainSuffix: o.domainSuffix, Security: sec}, svc, assets)
	return &app{db: db, layer: layer, keys: ring, svc: svc, hub: h, handler: handler, sec: sec}, nil
}

// signingKeys is the token issuer: on one node its key is the data
// directory's file; in a cluster every node shares the keys in PostgreSQL
// (the first node creates one), and the ring reloads them so that a
// rotation reaches every node.
func signingKeys(ctx context.Context, o options, db pos.Store, cfg token.Config) (*token.Issuer, *token.KeyRing, error) {
	if ks, ok := db.(pos.KeyStore); ok && o.postgres != "" {
		ring, err := token.NewKeyRing(ctx, ks, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("signing keys: %w", err)
		}
		return ring.Issuer(), ring, nil
	}
	key, err := token.LoadOrCreateKey(o.dataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("signing key: %w", err)
	}
	return token.New(key, cfg), nil, nil
}
