package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
	"time"

	"idleguard/server/hub"
	"idleguard/server/idle"
)

// startDebug serves net/http/pprof and /debug/stats on addr, a listener of
// its own: profiles show the program's insides and must never share the
// POS-facing address. It is off unless -debug-addr is given. The returned
// function stops it.
func startDebug(log *slog.Logger, addr string, h *hub.Hub, tracker *idle.Tracker) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			// For leak checks: what is left once garbage is gone.
			runtime.GC() // twice: the first only moves sync.Pool contents aside
			debug.FreeOSMemory()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(readStats(h, tracker))
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

// stats is /debug/stats: what a load test watches.
type stats struct {
	Goroutines int    `json:"goroutines"`
	Sockets    int    `json:"sockets"`    // open sockets in the hub
	Sessions   int    `json:"sessions"`   // live sessions on the idle clock
	Frames     uint64 `json:"frames"`     // client frames read since start
	LastWrite  int64  `json:"last_write"` // Unix ns of the last text frame written
	HeapAlloc  uint64 `json:"heap_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	// HeapIdle - HeapReleased is free heap the runtime keeps for reuse.
	HeapIdle     uint64 `json:"heap_idle"`
	HeapReleased uint64 `json:"heap_released"`
	Sys          uint64 `json:"sys"`
	NumGC        uint32 `json:"num_gc"`
}

func readStats(h *hub.Hub, tracker *idle.Tracker) stats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return stats{
		Goroutines:   runtime.NumGoroutine(),
		Sockets:      h.Count(),
		Sessions:     tracker.Len(),
		Frames:       h.Frames(),
		LastWrite:    unixNano(h.LastWrite()),
		HeapAlloc:    m.HeapAlloc,
		HeapInuse:    m.HeapInuse,
		StackInuse:   m.StackInuse,
		HeapIdle:     m.HeapIdle,
		HeapReleased: m.HeapReleased,
		Sys:          m.Sys,
		NumGC:        m.NumGC,
	}
}

// unixNano is t in Unix ns, or 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
