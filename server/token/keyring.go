package token

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"idleguard/server/pos"
)

// A cluster's nodes share their signing keys through a pos.KeyStore: one
// current key signs, on every node; retired keys go on verifying what they
// signed while they were current. A KeyRing keeps one node's Issuer equal
// to the store: it reloads on a schedule (Run) and when a token names a
// kid the node does not know, which is how a node hears of another node's
// rotation at once.
//
// The retention rule: a retired key stays in the set, and in the JWKS,
// until KeyRetention after its retirement, then leaves the set at the next
// reload, and the store (DropRetired) on the next run of the schedule.
// KeyRetention is the longest a token can be accepted after it was signed
// (MaxTokenLifetime) plus the longest a node may go on signing with a key
// after another node retired it (RotationLag).

// MaxTokenLifetime is the longest time from a token's signing to the end
// of its exp+Leeway: exp is at most the longest Expiration Time
// (pos.MaxExpirationSeconds) after now, since a session's last activity is
// never in the future, plus a second as Issue rounds exp up, and Verify
// accepts a token until Leeway past exp. (A token past that is still
// given back with ErrExpired, for a session another tab kept alive; once
// its key is dropped it is refused, and that tab signs in again.)
const MaxTokenLifetime = pos.MaxExpirationSeconds*time.Second + time.Second + Leeway

// RotationLag bounds how long after a rotation a node may still sign
// with the key that was retired: until its next reload, at most
// ReloadInterval later while the store answers, but for as long as it
// cannot reach the store. A day covers a store down for that long, and
// adds a day to the year a retired key is kept.
const RotationLag = 24 * time.Hour

// KeyRetention is how long after its retirement a key stays in a
// KeyRing's set: every token it signed has expired by then.
const KeyRetention = MaxTokenLifetime + RotationLag

// ReloadInterval is how often a node should run Run's reload: the
// longest its JWKS lags behind a rotation, and (with RotationLag) how
// long it may still sign with a retired key.
const ReloadInterval = time.Minute

// UnknownKidReload is the shortest time between a reload and one that a
// token with an unknown kid causes: a flood of made-up kids costs the
// store at most one read a second from each node.
const UnknownKidReload = time.Second

// reloadTimeout bounds one reload, which a Verify may be waiting for.
const reloadTimeout = 2 * time.Second

// KeyRing keeps an Issuer's keys equal to a pos.KeyStore's. It is safe
// for concurrent use.
type KeyRing struct {
	store  pos.KeyStore
	issuer *Issuer
	now    func() time.Time // the Issuer's clock, for retention

	// lock is held, by a send, for a reload: one at a time, and a
	// Reload whose ctx ends stops waiting for it.
	lock      chan struct{}
	begun     atomic.Uint64 // reloads begun, counted with lock held
	lastStart time.Time     // when the last reload began, by time.Now
	lastErr   error         // how it ended
}

// NewKeyRing makes the store's first key if it has none
// (EnsureSigningKey: nodes starting together on a new database agree on
// one), loads the keys, and returns the ring; its Issuer signs with the
// store's current key. cfg is as for New, which panics likewise.
func NewKeyRing(ctx context.Context, store pos.KeyStore, cfg Config) (*KeyRing, error) {
	iss := newUnkeyed(cfg, "token.NewKeyRing")
	r := &KeyRing{store: store, issuer: iss, now: iss.cfg.Now, lock: make(chan struct{}, 1)}
	if err := store.EnsureSigningKey(ctx, GenerateKey, r.now()); err != nil {
		return nil, fmt.Errorf("token: signing key: %w", err)
	}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	iss.reload = r.reloadUnknown
	return r, nil
}

// Issuer is the ring's Issuer, whose keys follow the store's.
func (r *KeyRing) Issuer() *Issuer { return r.issuer }

// Reload reads the store's keys and gives the Issuer those retired no
// more than KeyRetention ago (and the current key). On error the Issuer
// keeps the keys it has.
func (r *KeyRing) Reload(ctx context.Context) error {
	select {
	case r.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("token: reload signing keys: %w", ctx.Err())
	}
	defer func() { <-r.lock }()
	return r.reload(ctx)
}

// reload is Reload with r.lock held.
func (r *KeyRing) reload(ctx context.Context) error {
	r.begun.Add(1)
	r.lastStart = time.Now()
	r.lastErr = r.load(ctx)
	return r.lastErr
}

func (r *KeyRing) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	now := r.now()
	stored, err := r.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("token: reload signing keys: %w", err)
	}
	keys := make([]pos.SigningKey, 0, len(stored))
	for _, k := range stored {
		// Kept up to the instant DropRetired stops keeping it too.
		if k.Current() || !now.After(k.RetiredAt.Add(KeyRetention)) {
			keys = append(keys, k)
		}
	}
	if err := r.issuer.SetKeys(keys); err != nil {
		return fmt.Errorf("token: reload signing keys: %w", err)
	}
	return nil
}

// reloadUnknown is the Issuer's reload, for a Verify whose token names a
// kid not in the set: it returns once a reload that began after the call
// has ended, and reports whether that reload succeeded, so that the set
// Verify tries next holds every key that was in the store when the token
// arrived, and so any key that can have signed it. Callers at once share
// one reload: those queued on r.lock find that one began after them. A
// reload waits until UnknownKidReload after the last one began (on the
// monotonic clock, whatever the Issuer's clock says). Errors go
// unreported: Run's next reload reports the store's trouble.
func (r *KeyRing) reloadUnknown() bool {
	ticket := r.begun.Load()
	r.lock <- struct{}{}
	defer func() { <-r.lock }()
	if r.begun.Load() != ticket {
		return r.lastErr == nil
	}
	if d := UnknownKidReload - time.Since(r.lastStart); d > 0 {
		time.Sleep(d)
	}
	return r.reload(context.Background()) == nil
}

// DropRetired deletes from the store the keys retired more than
// KeyRetention ago, which no ring keeps any longer, and returns how many.
func (r *KeyRing) DropRetired(ctx context.Context) (int, error) {
	n, err := r.store.DropRetiredKeys(ctx, r.now().Add(-KeyRetention))
	if err != nil {
		return 0, fmt.Errorf("token: drop retired keys: %w", err)
	}
	return n, nil
}

// Run reloads the keys and drops those past retention from the store
// every interval (ReloadInterval is the one to use), until ctx ends.
// Errors are logged; the Issuer keeps the keys it has.
func (r *KeyRing) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.Reload(ctx); ctx.Err() != nil {
			return
		} else if err != nil {
			log.Error("signing keys: reload failed, verifying with the keys already loaded", "err", err)
		}
		if n, err := r.DropRetired(ctx); err != nil {
			log.Error("signing keys: drop retired", "err", err)
		} else if n > 0 {
			log.Info("signing keys: dropped retired keys past retention", "keys", n)
		}
	}
}
