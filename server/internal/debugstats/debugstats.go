// Package debugstats is the /debug/stats document: what a load test watches
// of a server (goroutines, sockets, memory). idleguard's debug listener and
// the load harness's echo baseline serve it; the harness reads it.
package debugstats

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
)

// Stats is one sample.
type Stats struct {
	Goroutines int    `json:"goroutines"`
	Sockets    int    `json:"sockets"`    // open sockets
	Sessions   int    `json:"sessions"`   // live sessions on the idle clock (idleguard only)
	Domains    int    `json:"domains"`    // domains served (idleguard only)
	Frames     uint64 `json:"frames"`     // client frames read since start
	LastWrite  int64  `json:"last_write"` // Unix ns of the last text frame written, 0 if none
	HeapAlloc  uint64 `json:"heap_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	// HeapIdle - HeapReleased is free heap the runtime keeps for reuse.
	HeapIdle     uint64 `json:"heap_idle"`
	HeapReleased uint64 `json:"heap_released"`
	Sys          uint64 `json:"sys"`
	NumGC        uint32 `json:"num_gc"`
	// Security counts security-log events by kind (idleguard only).
	Security map[string]uint64 `json:"security,omitempty"`
}

// Counters are the server's own figures; the runtime's are added by Read.
type Counters struct {
	Sockets   int
	Sessions  int
	Domains   int
	Frames    uint64
	LastWrite int64
	Security  map[string]uint64
}

// Read samples the runtime beside c.
func Read(c Counters) Stats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return Stats{
		Goroutines:   runtime.NumGoroutine(),
		Sockets:      c.Sockets,
		Sessions:     c.Sessions,
		Domains:      c.Domains,
		Frames:       c.Frames,
		LastWrite:    c.LastWrite,
		HeapAlloc:    m.HeapAlloc,
		HeapInuse:    m.HeapInuse,
		StackInuse:   m.StackInuse,
		HeapIdle:     m.HeapIdle,
		HeapReleased: m.HeapReleased,
		Sys:          m.Sys,
		NumGC:        m.NumGC,
		Security:     c.Security,
	}
}

// Handler serves a sample as JSON; ?gc=1 collects garbage first, for leak
// checks (what is left once garbage is gone).
func Handler(counters func() Counters) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC() // twice: the first only moves sync.Pool contents aside
			debug.FreeOSMemory()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Read(counters()))
	})
}

// Mux is a debug listener's routes: net/http/pprof under /debug/pprof/ and
// Handler(counters) at /debug/stats.
func Mux(counters func() Counters) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/stats", Handler(counters))
	return mux
}
