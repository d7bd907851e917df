// Package storetest holds test support for code on top of the store: the
// real SQLite store with writes that fail on demand.
package storetest

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/sqlite"
)

// Faulty is the real SQLite store whose session writes (activity and
// revocations) fail while Failing is set: a full or read-only disk, as
// the outside test produced. Every other method is the real one.
type Faulty struct {
	*sqlite.DB
	Failing atomic.Bool
}

// ErrDiskFull is what the failing writes return.
var ErrDiskFull = errors.New("database or disk is full")

func (f *Faulty) SaveActivity(ctx context.Context, b []pos.Activity) error {
	if f.Failing.Load() {
		return ErrDiskFull
	}
	return f.DB.SaveActivity(ctx, b)
}

func (f *Faulty) RevokeSession(ctx context.Context, id string, at time.Time, reason protocol.Reason) error {
	if f.Failing.Load() {
		return ErrDiskFull
	}
	return f.DB.RevokeSession(ctx, id, at, reason)
}

func (f *Faulty) RevokeSessions(ctx context.Context, b []pos.Revocation) error {
	if f.Failing.Load() {
		return ErrDiskFull
	}
	return f.DB.RevokeSessions(ctx, b)
}
