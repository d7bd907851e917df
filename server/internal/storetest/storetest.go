// Package storetest holds test support for code on top of the store: the
// real SQLite store with writes that fail on demand.
package storetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/sqlite"
)

// Faulty is the real SQLite store whose session writes (activity and
// revocations) fail while Failing is set: a full or read-only disk, as
// the outside test produced. Every other method, the domains' among them,
// is the real one.
type Faulty struct {
	*sqlite.DB
	Failing atomic.Bool
}

var _ pos.Store = (*Faulty)(nil)

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

// Template is a SQLite file filled once by its seed and copied for each
// test: migrating a new file and hashing passwords take a few hundred
// milliseconds under -race, copying one takes none.
type Template struct {
	image func() ([]byte, error)
}

// NewTemplate returns a template that seed fills, the first time a test
// opens it. The file seed gets has one domain, pos.DefaultDomain, empty:
// what it adds there (or in domains it adds itself) names its domain.
func NewTemplate(seed func(context.Context, *sqlite.DB) error) *Template {
	return &Template{image: sync.OnceValues(func() ([]byte, error) {
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "storetest-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, sqlite.FileName)
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, err
		}
		if err := seed(ctx, db); err != nil {
			db.Close()
			return nil, err
		}
		// Closing folds the write-ahead log into the file.
		if err := db.Close(); err != nil {
			return nil, err
		}
		return os.ReadFile(path)
	})}
}

// Open opens a fresh copy of the template in tb's temp dir, failing tb on
// error; it is closed when the test ends.
func (t *Template) Open(tb testing.TB) *sqlite.DB {
	tb.Helper()
	image, err := t.image()
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), sqlite.FileName)
	if err := os.WriteFile(path, image, 0o600); err != nil {
		tb.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
