package storetest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"idleguard/server/pos"
)

// KeyImpl is one implementation of pos.KeyStore, as KeyContract opens it.
type KeyImpl struct {
	// New makes new, empty storage and returns what opens a store on it,
	// as Impl.New does: each store is closed when the test ends, and
	// stores opened on the same storage share it, as nodes do.
	New func(t *testing.T) (open func(t *testing.T) pos.KeyStore)
}

// KeyContract runs the behaviour tests every pos.KeyStore must pass,
// each on new storage.
func KeyContract(t *testing.T, impl KeyImpl) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, KeyImpl)
	}{
		{"EnsureOnce", testEnsureOnce},
		{"EnsureGenFails", testEnsureGenFails},
		{"Rotate", testRotate},
		{"RotateRefused", testRotateRefused},
		{"RotateTogether", testRotateTogether},
		{"DropRetired", testDropRetired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, impl)
		})
	}
}

// newKeys returns n new Ed25519 keys.
func newKeys(tb testing.TB, n int) []ed25519.PrivateKey {
	tb.Helper()
	keys := make([]ed25519.PrivateKey, n)
	for i := range keys {
		_, k, err := ed25519.GenerateKey(nil)
		mustNoErr(tb, err)
		keys[i] = k
	}
	return keys
}

// wantKey describes one key SigningKeys should return.
type wantKey struct {
	key              ed25519.PrivateKey
	created, retired int64 // at(ms); retired -1 for the current key
}

func mustSigningKeys(tb testing.TB, s pos.KeyStore, want ...wantKey) []pos.SigningKey {
	tb.Helper()
	got, err := s.SigningKeys(context.Background())
	mustNoErr(tb, err)
	if len(got) != len(want) {
		tb.Fatalf("SigningKeys: got %d keys %v, want %d", len(got), keyIDs(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		wantID := pos.KeyID(w.key.Public().(ed25519.PublicKey))
		if g.ID != wantID || !g.Private.Equal(w.key) {
			tb.Errorf("key %d: got %s, want %s (%v)", i, g.ID, wantID, keyIDs(got))
		}
		if !g.Created.Equal(at(w.created)) {
			tb.Errorf("key %d: got Created %v, want %v", i, g.Created, at(w.created))
		}
		switch {
		case w.retired < 0 && !g.Current():
			tb.Errorf("key %d: got RetiredAt %v, want the current key", i, g.RetiredAt)
		case w.retired >= 0 && !g.RetiredAt.Equal(at(w.retired)):
			tb.Errorf("key %d: got RetiredAt %v, want %v", i, g.RetiredAt, at(w.retired))
		}
	}
	return got
}

func keyIDs(keys []pos.SigningKey) []string {
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

// testEnsureOnce: nodes that start together on a new store, a store each,
// make one key between them, and every one of them returns after it is
// there; later calls never generate.
func testEnsureOnce(t *testing.T, impl KeyImpl) {
	ctx := context.Background()
	open := impl.New(t)
	const nodes = 12
	stores := make([]pos.KeyStore, nodes)
	for i := range stores {
		stores[i] = open(t)
	}
	if keys, err := stores[0].SigningKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("SigningKeys of a new store: got %v, %v, want none", keyIDs(keys), err)
	}
	candidates := newKeys(t, nodes)
	var gens atomic.Int32
	start := make(chan struct{})
	seen := make([][]pos.SigningKey, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			err := stores[i].EnsureSigningKey(ctx, func() (ed25519.PrivateKey, error) {
				gens.Add(1)
				return candidates[i], nil
			}, at(int64(i)))
			if err != nil {
				t.Errorf("node %d: EnsureSigningKey: %v", i, err)
				return
			}
			// Once Ensure has returned, the key is there for this node.
			keys, err := stores[i].SigningKeys(ctx)
			if err != nil {
				t.Errorf("node %d: SigningKeys: %v", i, err)
			}
			seen[i] = keys
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	keys, err := stores[0].SigningKeys(ctx)
	mustNoErr(t, err)
	if len(keys) != 1 || !keys[0].Current() {
		t.Fatalf("after %d Ensures at once: got keys %v, want one current key", nodes, keyIDs(keys))
	}
	var maker = -1
	for i, c := range candidates {
		if keys[0].Private.Equal(c) {
			maker = i
		}
	}
	if maker < 0 {
		t.Fatal("the key is none of those the callers generated")
	}
	if !keys[0].Created.Equal(at(int64(maker))) {
		t.Errorf("Created: got %v, want its maker's at %v", keys[0].Created, at(int64(maker)))
	}
	for i, s := range seen {
		if len(s) != 1 || s[0].ID != keys[0].ID {
			t.Errorf("node %d: saw %v after its Ensure, want [%s]", i, keyIDs(s), keys[0].ID)
		}
	}
	t.Logf("%d of %d callers generated a key", gens.Load(), nodes)

	// Every later start finds the key and generates none, on a store
	// opened again too.
	for _, s := range []pos.KeyStore{stores[0], open(t)} {
		mustNoErr(t, s.EnsureSigningKey(ctx, func() (ed25519.PrivateKey, error) {
			t.Error("gen called with a key in the store")
			return newKeys(t, 1)[0], nil
		}, at(100)))
		mustSigningKeys(t, s, wantKey{keys[0].Private, int64(maker), -1})
	}
}

// testEnsureGenFails: a generator's error is the caller's, and nothing
// is stored; the next call makes the key.
func testEnsureGenFails(t *testing.T, impl KeyImpl) {
	ctx := context.Background()
	s := impl.New(t)(t)
	boom := errors.New("no entropy")
	err := s.EnsureSigningKey(ctx, func() (ed25519.PrivateKey, error) { return nil, boom }, at(1))
	if !errors.Is(err, boom) {
		t.Fatalf("EnsureSigningKey with a failing gen: got %v, want its error", err)
	}
	mustSigningKeys(t, s)
	k := newKeys(t, 1)[0]
	mustNoErr(t, s.EnsureSigningKey(ctx, func() (ed25519.PrivateKey, error) { return k, nil }, at(2)))
	mustSigningKeys(t, s, wantKey{k, 2, -1})
}

// testRotate: each rotation adds the current key and retires the one
// before at the same moment; SigningKeys lists the current key, then the
// retired ones, newest retirement first, and a store opened again reads
// the same.
func testRotate(t *testing.T, impl KeyImpl) {
	ctx := context.Background()
	open := impl.New(t)
	s := open(t)
	k := newKeys(t, 3)
	mustNoErr(t, s.EnsureSigningKey(ctx, func() (ed25519.PrivateKey, error) { return k[0], nil }, at(10)))
	mustNoErr(t, s.RotateSigningKey(ctx, k[1], at(20)))
	mustSigningKeys(t, s, wantKey{k[1], 20, -1}, wantKey{k[0], 10, 20})
	mustNoErr(t, s.RotateSigningKey(ctx, k[2], at(30)))
	want := []wantKey{{k[2], 30, -1}, {k[1], 20, 30}, {k[0], 10, 20}}
	mustSigningKeys(t, s, want...)
	mustSigningKeys(t, open(t), want...)

	// On a store with no key yet, a rotation makes the first.
	first := newKeys(t, 1)[0]
	empty := impl.New(t)(t)
	mustNoErr(t, empty.RotateSigningKey(ctx, first, at(5)))
	mustSigningKeys(t, empty, wantKey{first, 5, -1})
}

// testRotateRefused: a key already stored, or not an Ed25519 private
// key, is refused and changes nothing.
func testRotateRefused(t *testing.T, impl KeyImpl) {
	ctx := context.Background()
	s := impl.New(t)(t)
	k := newKeys(t, 2)
	mustNoErr(t, s.EnsureSigningKey(ctx, func() (ed25519.PrivateKey, error) { return k[0], nil }, at(10)))
	mustNoErr(t, s.RotateSigningKey(ctx, k[1], at(20)))
	want := []wantKey{{k[1], 20, -1}, {k[0], 10, 20}}

	for _, again := range k {
		wantCode(t, s.RotateSigningKey(ctx, again, at(30)), pos.ECONFLICT)
		mustSigningKeys(t, s, want...)
	}
	// The public half of a private key that is not its seed's.
	mismatched := append(ed25519.PrivateKey(nil), newKeys(t, 1)[0]...)
	copy(mismatched[ed25519.SeedSize:], k[0][ed25519.SeedSize:])
	for name, bad := range map[string]ed25519.PrivateKey{
		"nil":        nil,
		"short":      make(ed25519.PrivateKey, 31),
		"seed only":  ed25519.PrivateKey(newKeys(t, 1)[0].Seed()),
		"mismatched": mismatched,
	} {
		if err := s.RotateSigningKey(ctx, bad, at(40)); err == nil {
			t.Errorf("RotateSigningKey(%s key): got nil error, want one", name)
		}
		mustSigningKeys(t, s, want...)
	}
}

// testRotateTogether: rotations at once all happen, one after another:
// every key is stored, one of them current.
func testRotateTogether(t *testing.T, impl KeyImpl) {
	ctx := context.Background()
	open := impl.New(t)
	first := newKeys(t, 1)[0]
	mustNoErr(t, open(t).EnsureSigningKey(ctx, func() (ed25519.PrivateKey, error) { return first, nil }, at(0)))
	const n = 8
	stores := make([]pos.KeyStore, n)
	for i := range stores {
		stores[i] = open(t)
	}
	k := newKeys(t, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			if err := stores[i].RotateSigningKey(ctx, k[i], at(1)); err != nil {
				t.Errorf("rotation %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	keys, err := stores[0].SigningKeys(ctx)
	mustNoErr(t, err)
	if len(keys) != n+1 {
		t.Fatalf("after %d rotations at once: got %d keys, want %d", n, len(keys), n+1)
	}
	ids := map[string]bool{}
	for i, key := range keys {
		ids[key.ID] = true
		if key.Current() != (i == 0) {
			t.Errorf("key %d: got current %v, want only the first current", i, key.Current())
		}
	}
	for i, key := range append(k, first) {
		if !ids[pos.KeyID(key.Public().(ed25519.PublicKey))] {
			t.Errorf("key %d is not stored", i)
		}
	}
}

// testDropRetired: DropRetiredKeys deletes the keys retired strictly
// before its time, and never the current key.
func testDropRetired(t *testing.T, impl KeyImpl) {
	ctx := context.Background()
	s := impl.New(t)(t)
	k := newKeys(t, 3)
	mustNoErr(t, s.EnsureSigningKey(ctx, func() (ed25519.PrivateKey, error) { return k[0], nil }, at(10)))
	mustNoErr(t, s.RotateSigningKey(ctx, k[1], at(20)))
	mustNoErr(t, s.RotateSigningKey(ctx, k[2], at(30)))

	drop := func(before int64, want int) {
		t.Helper()
		n, err := s.DropRetiredKeys(ctx, at(before))
		mustNoErr(t, err)
		if n != want {
			t.Errorf("DropRetiredKeys(%d): got %d, want %d", before, n, want)
		}
	}
	drop(20, 0) // k[0] was retired at 20, not before
	mustSigningKeys(t, s, wantKey{k[2], 30, -1}, wantKey{k[1], 20, 30}, wantKey{k[0], 10, 20})
	drop(21, 1)
	mustSigningKeys(t, s, wantKey{k[2], 30, -1}, wantKey{k[1], 20, 30})
	drop(1_000_000, 1) // the current key stays, however late
	mustSigningKeys(t, s, wantKey{k[2], 30, -1})
	drop(1_000_000, 0)
}
