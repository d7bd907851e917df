package app

import "runtime/debug"

// gcPercent is the server's GOGC unless the environment sets one. Idle
// sockets are nearly all of a loaded node's memory and they make almost no
// garbage (reading an activity frame allocates nothing), so the heap may
// grow only half as far past what is live as Go's default lets it: at
// 19,000 sockets that is about 1.2 KB less resident memory per idle socket
// for no measurable CPU on activity, and a little more collecting while
// thousands of tills connect at once (docs/BENCHMARKS.md).
const gcPercent = 50

// TuneGC applies gcPercent unless GOGC is set.
func TuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
