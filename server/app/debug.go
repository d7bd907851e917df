package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"idleguard/server/hub"
	"idleguard/server/internal/debugstats"
	"idleguard/server/sessions"
)

// startDebug serves net/http/pprof and /debug/stats on addr, a listener of
// its own: profiles show the program's insides and must never share the
// POS-facing address. It is off unless -debug-addr is given. The returned
// function stops it.
func startDebug(log *slog.Logger, addr string, h *hub.Hub, svc *sessions.Service) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listen: %w", err)
	}
	mux := debugstats.Mux(func() debugstats.Counters {
		return debugstats.Counters{
			Sockets:   h.Count(),
			Sessions:  svc.Live(),
			Domains:   svc.Domains(),
			Security:  svc.SecurityCounts(),
			Frames:    h.Frames(),
			LastWrite: h.LastWrite(),
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener", "err", err)
		}
	}()
	log.Info("debug listener", "addr", "http://"+ln.Addr().String()+"/debug/stats")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
