// Package clock gives the idle clock its notion of time, so that tests can
// move time by hand instead of sleeping.
package clock

import "time"

// Clock tells the time and runs functions later. Times it returns carry
// Go's monotonic reading, so a wall-clock step changes no deadline.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call; it reports whether it did.
	Stop() bool
}

// Real is the system clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
