package token

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"idleguard/server/pos"
)

// memKeys is a pos.KeyStore in memory, as one database is for every node
// of a cluster, counting its reads. (The PostgreSQL store passes
// storetest.KeyContract; this one is for the rings' own behaviour.)
type memKeys struct {
	mu    sync.Mutex
	keys  []pos.SigningKey // current first, as SigningKeys returns them
	reads []time.Time      // when SigningKeys was called
	fail  error            // SigningKeys's error while set
	gate  chan struct{}    // SigningKeys waits on it while set
}

var _ pos.KeyStore = (*memKeys)(nil)

func (m *memKeys) EnsureSigningKey(_ context.Context, gen func() (ed25519.PrivateKey, error), at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.keys) > 0 {
		return nil
	}
	k, err := gen()
	if err != nil {
		return err
	}
	m.keys = []pos.SigningKey{signingKey(k, at)}
	return nil
}

func (m *memKeys) SigningKeys(ctx context.Context) ([]pos.SigningKey, error) {
	m.mu.Lock()
	m.reads = append(m.reads, time.Now())
	gate, fail := m.gate, m.fail
	keys := slices.Clone(m.keys)
	m.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return keys, fail
}

func (m *memKeys) RotateSigningKey(_ context.Context, k ed25519.PrivateKey, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.keys) > 0 {
		m.keys[0].RetiredAt = at
	}
	m.keys = append([]pos.SigningKey{signingKey(k, at)}, m.keys...)
	return nil
}

func (m *memKeys) DropRetiredKeys(_ context.Context, before time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.keys)
	m.keys = slices.DeleteFunc(m.keys, func(k pos.SigningKey) bool { return !k.Current() && k.RetiredAt.Before(before) })
	return n - len(m.keys), nil
}

func (m *memKeys) readCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reads)
}

func (m *memKeys) readTimes() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.reads)
}

func (m *memKeys) set(f func(m *memKeys)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func signingKey(k ed25519.PrivateKey, created time.Time) pos.SigningKey {
	return pos.SigningKey{ID: Thumbprint(k.Public().(ed25519.PublicKey)), Private: k, Created: created}
}

func kidOf(k ed25519.PrivateKey) string { return Thumbprint(k.Public().(ed25519.PublicKey)) }

var ringConfig = Config{Issuer: "idleguard", Audience: "pos"}

func mustRing(t *testing.T, store pos.KeyStore) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(context.Background(), store, ringConfig)
	if err != nil {
		t.Fatalf("NewKeyRing: %v", err)
	}
	return r
}

// mustIssue issues a token for a session whose deadline is a day on.
func mustIssue(t *testing.T, iss *Issuer) string {
	t.Helper()
	tok, _, err := iss.Issue("acme", "alice", "s-1", time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func wantValid(t *testing.T, iss *Issuer, tok, what string) {
	t.Helper()
	if _, err := iss.Verify(tok); err != nil {
		t.Errorf("%s: got %v, want valid", what, err)
	}
}

func wantInvalid(t *testing.T, iss *Issuer, tok, what string) {
	t.Helper()
	c, err := iss.Verify(tok)
	if err == nil || c != (Claims{}) || pos.ErrorMessage(err) != "invalid token" {
		t.Errorf("%s: got %+v, %v, want invalid token", what, c, err)
	}
}

// jwksKids lists the kids of iss's JWKS, in order.
func jwksKids(t *testing.T, iss *Issuer) []string {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatalf("JWKS %s: %v", iss.JWKS(), err)
	}
	var kids []string
	for _, k := range set.Keys {
		if _, ok := k["d"]; ok {
			t.Fatal("got a private d in the JWKS, want none")
		}
		kids = append(kids, k["kid"])
	}
	return kids
}

func TestKeyRetention(t *testing.T) {
	// A year, the rounding second and the leeway, then the day a node may
	// lag behind a rotation.
	if want := 365*24*time.Hour + time.Second + Leeway; MaxTokenLifetime != want {
		t.Errorf("MaxTokenLifetime: got %v, want %v", MaxTokenLifetime, want)
	}
	if want := MaxTokenLifetime + 24*time.Hour; KeyRetention != want {
		t.Errorf("KeyRetention: got %v, want %v", KeyRetention, want)
	}
	// The longest token Issue will sign, and Verify still accepts at its
	// end, is within MaxTokenLifetime of its signing.
	iss, now := newIssuer(t)
	*now = t0.Add(time.Millisecond) // the worst rounding: exp rounded up by all but a millisecond
	tok, c, err := iss.Issue("acme", "alice", "s-1", now.Add(pos.MaxExpirationSeconds*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	signed := *now
	end := c.ExpiresAt.Add(Leeway)
	*now = end.Add(-time.Millisecond)
	wantValid(t, iss, tok, "the longest token just before exp+Leeway")
	if lived := end.Sub(signed); lived > MaxTokenLifetime || lived < MaxTokenLifetime-time.Millisecond {
		t.Errorf("the longest token is accepted until %v after its signing, want just under MaxTokenLifetime %v", lived, MaxTokenLifetime)
	}
	*now = end
	if _, err := iss.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Errorf("at exp+Leeway: got %v, want expired", err)
	}
}

// TestSetKeys: a set verifies with each of its keys and signs with the
// first; JWKS lists them all, current first; a set that breaks a rule is
// refused and the Issuer keeps its keys.
func TestSetKeys(t *testing.T) {
	iss, _ := newIssuer(t)
	old := testKey(t)
	oldTok, _, err := iss.Issue("acme", "alice", "s-1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	k2, k3 := otherEd25519(t), otherEd25519(t)
	retired := func(k ed25519.PrivateKey) pos.SigningKey {
		s := signingKey(k, t0.Add(-time.Hour))
		s.RetiredAt = t0
		return s
	}
	set := []pos.SigningKey{signingKey(k2, t0), retired(old), retired(k3)}
	if err := iss.SetKeys(set); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	if got, want := jwksKids(t, iss), []string{kidOf(k2), rfcKid, kidOf(k3)}; !slices.Equal(got, want) {
		t.Errorf("JWKS kids: got %v, want %v", got, want)
	}
	if iss.KeyID() != kidOf(k2) || !iss.PublicKey().Equal(k2.Public()) {
		t.Errorf("KeyID: got %s, want the current key's %s", iss.KeyID(), kidOf(k2))
	}
	newTok, _, err := iss.Issue("acme", "alice", "s-1", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if h := string(segment(t, newTok, 0)); h != jsonText(map[string]any{"alg": "EdDSA", "kid": kidOf(k2), "typ": "JWT"}) {
		t.Errorf("header of a new token: got %s, want the current key's kid", h)
	}
	wantValid(t, iss, oldTok, "a token of the retired key")
	wantValid(t, iss, newTok, "a token of the current key")
	wantValid(t, iss, sign(t, jwt.SigningMethodEdDSA, k3, map[string]any{"kid": kidOf(k3)}, goodClaims(nil)), "a token of the other retired key")

	swapped := []pos.SigningKey{signingKey(k2, t0), retired(old)}
	swapped[1].ID = kidOf(k3)
	current2 := []pos.SigningKey{signingKey(k2, t0), signingKey(k3, t0)}
	for name, bad := range map[string][]pos.SigningKey{
		"none":                   nil,
		"first retired":          {retired(k2)},
		"two current":            current2,
		"kid of another key":     swapped,
		"kid twice":              {signingKey(k2, t0), retired(k2)},
		"short key":              {{ID: kidOf(k2), Private: k2[:10]}},
		"kid not its thumbprint": {{ID: "k2", Private: k2}},
	} {
		if err := iss.SetKeys(bad); err == nil {
			t.Errorf("SetKeys(%s): got nil error, want one", name)
		}
	}
	if got, want := jwksKids(t, iss), []string{kidOf(k2), rfcKid, kidOf(k3)}; !slices.Equal(got, want) {
		t.Errorf("JWKS kids after refused sets: got %v, want %v, unchanged", got, want)
	}

	// Dropped from the set, the retired key verifies nothing.
	if err := iss.SetKeys(set[:1]); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, iss, oldTok, "a token of a key no longer in the set")
	wantValid(t, iss, newTok, "a token of the current key")
	if got, want := jwksKids(t, iss), []string{kidOf(k2)}; !slices.Equal(got, want) {
		t.Errorf("JWKS kids: got %v, want %v", got, want)
	}
}

// TestKidSpoofing: a token that names a kid of the set but was signed by
// any other key, of the set or not, is invalid; signed by the kid's own
// key it is valid.
func TestKidSpoofing(t *testing.T) {
	iss, _ := newIssuer(t)
	keys := []ed25519.PrivateKey{otherEd25519(t), testKey(t), otherEd25519(t)}
	set := []pos.SigningKey{signingKey(keys[0], t0)}
	for _, k := range keys[1:] {
		s := signingKey(k, t0.Add(-time.Hour))
		s.RetiredAt = t0
		set = append(set, s)
	}
	if err := iss.SetKeys(set); err != nil {
		t.Fatal(err)
	}
	signers := append(slices.Clone(keys), otherEd25519(t))
	for ki, named := range keys {
		for si, signer := range signers {
			tok := sign(t, jwt.SigningMethodEdDSA, signer, map[string]any{"kid": kidOf(named)}, goodClaims(nil))
			if si == ki {
				wantValid(t, iss, tok, "signed by the kid's key")
				continue
			}
			wantInvalid(t, iss, tok, fmt.Sprintf("kid of set key %d signed by key %d", ki, si))
		}
	}
}

// FuzzKidSpoofing signs a valid token with a key from the fuzzer's seed
// under a kid of the set: it verifies only if that is the kid's own key.
func FuzzKidSpoofing(f *testing.F) {
	iss, now := newIssuer(f)
	set := []pos.SigningKey{signingKey(otherEd25519(f), t0)}
	for _, k := range []ed25519.PrivateKey{testKey(f), otherEd25519(f)} {
		s := signingKey(k, t0.Add(-time.Hour))
		s.RetiredAt = t0
		set = append(set, s)
	}
	if err := iss.SetKeys(set); err != nil {
		f.Fatal(err)
	}
	for i, k := range set {
		f.Add(k.Private.Seed(), uint8(i))
		f.Add(k.Private.Seed(), uint8(i+1))
	}
	f.Add(make([]byte, ed25519.SeedSize), uint8(0))
	f.Fuzz(func(t *testing.T, seed []byte, which uint8) {
		*now = t0
		if len(seed) != ed25519.SeedSize {
			return
		}
		signer := ed25519.NewKeyFromSeed(seed)
		named := set[int(which)%len(set)]
		tok := sign(t, jwt.SigningMethodEdDSA, signer, map[string]any{"kid": named.ID}, goodClaims(nil))
		_, err := iss.Verify(tok)
		if own := signer.Equal(named.Private); own != (err == nil) {
			t.Fatalf("kid %s, signed by its own key %v: got %v", named.ID, own, err)
		}
	})
}

// TestConcurrentSetKeys: Issue and Verify while the set changes under
// them (run with -race): every token verifies, with the set that signed
// it or a later one that keeps its key.
func TestConcurrentSetKeys(t *testing.T) {
	iss, _ := newIssuer(t)
	a, b := testKey(t), otherEd25519(t)
	sets := [][]pos.SigningKey{
		{signingKey(a, t0), {ID: kidOf(b), Private: b, RetiredAt: t0}},
		{signingKey(b, t0), {ID: kidOf(a), Private: a, RetiredAt: t0}},
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := iss.SetKeys(sets[n%2]); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 200 {
				tok, _, err := iss.Issue("acme", "alice", "s-1", t0.Add(time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := iss.Verify(tok); err != nil {
					t.Errorf("Verify while keys change: %v", err)
					return
				}
				_ = iss.JWKS()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
}

// TestKeyRingSharesOneKey: nodes starting on an empty store make one key
// between them and accept each other's tokens.
func TestKeyRingSharesOneKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memKeys{}
		a, b := mustRing(t, store), mustRing(t, store)
		if a.Issuer().KeyID() != b.Issuer().KeyID() || len(store.keys) != 1 || store.keys[0].ID != a.Issuer().KeyID() {
			t.Fatalf("kids: node a %s, node b %s, store %v: want one key", a.Issuer().KeyID(), b.Issuer().KeyID(), store.keys)
		}
		wantValid(t, b.Issuer(), mustIssue(t, a.Issuer()), "node a's token on node b")
		wantValid(t, a.Issuer(), mustIssue(t, b.Issuer()), "node b's token on node a")
	})
}

// TestKeyRingRotation: after a rotation a node signs with the new key
// once it reloads; a node that has not reloaded learns the new key from
// the first token that names it; both verify the old key's tokens and
// list both keys, until KeyRetention after the retirement, when the old
// key leaves the set, the JWKS and, by DropRetired, the store.
func TestKeyRingRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &memKeys{}
		a, b := mustRing(t, store), mustRing(t, store)
		oldKid := a.Issuer().KeyID()
		oldTok := mustIssue(t, a.Issuer())

		time.Sleep(time.Hour)
		k2 := otherEd25519(t)
		retiredAt := time.Now()
		if err := store.RotateSigningKey(ctx, k2, retiredAt); err != nil {
			t.Fatal(err)
		}
		// Before its reload, a still signs with the old key.
		if got := a.Issuer().KeyID(); got != oldKid {
			t.Errorf("kid before the reload: got %s, want the old %s", got, oldKid)
		}
		if err := a.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if got := a.Issuer().KeyID(); got != kidOf(k2) {
			t.Errorf("kid after the reload: got %s, want the new %s", got, kidOf(k2))
		}
		newTok := mustIssue(t, a.Issuer())

		reads := store.readCount()
		wantValid(t, b.Issuer(), newTok, "the new key's token on a node that has not reloaded")
		if got := store.readCount() - reads; got != 1 {
			t.Errorf("store reads for the unknown kid: got %d, want 1", got)
		}
		both := []string{kidOf(k2), oldKid}
		for name, r := range map[string]*KeyRing{"a": a, "b": b} {
			wantValid(t, r.Issuer(), oldTok, "node "+name+": the old key's token after the rotation")
			wantValid(t, r.Issuer(), newTok, "node "+name+": the new key's token")
			if got := jwksKids(t, r.Issuer()); !slices.Equal(got, both) {
				t.Errorf("node %s: JWKS kids: got %v, want %v", name, got, both)
			}
		}

		// To the end of the retention the old key stays; past it, it goes.
		time.Sleep(time.Until(retiredAt.Add(KeyRetention)))
		if err := a.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if got := jwksKids(t, a.Issuer()); !slices.Equal(got, both) {
			t.Errorf("JWKS kids at the end of retention: got %v, want %v", got, both)
		}
		if n, err := a.DropRetired(ctx); err != nil || n != 0 {
			t.Errorf("DropRetired at the end of retention: got %d, %v, want 0", n, err)
		}
		time.Sleep(time.Millisecond)
		if err := a.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := jwksKids(t, a.Issuer()), []string{kidOf(k2)}; !slices.Equal(got, want) {
			t.Errorf("JWKS kids after retention: got %v, want %v", got, want)
		}
		if n, err := a.DropRetired(ctx); err != nil || n != 1 {
			t.Errorf("DropRetired after retention: got %d, %v, want 1", n, err)
		}
		wantInvalid(t, a.Issuer(), oldTok, "the old key's token after retention")
		if len(store.keys) != 1 || store.keys[0].ID != kidOf(k2) {
			t.Errorf("store after DropRetired: got %v, want only the new key", store.keys)
		}
	})
}

// TestKeyRingUnknownKidReloadsOnce: tokens with a kid the node does not
// know, arriving together, share one reload; the next reload is a full
// UnknownKidReload after the one before; a kid that is no thumbprint
// reloads nothing.
func TestKeyRingUnknownKidReloadsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memKeys{}
		r := mustRing(t, store)
		iss := r.Issuer()
		unknown := sign(t, jwt.SigningMethodEdDSA, otherEd25519(t), map[string]any{"kid": kidOf(otherEd25519(t))}, goodClaims(nil))
		time.Sleep(time.Minute) // the load of NewKeyRing is long past

		// Hold the ring's lock, as a reload under way does, while a burst of
		// such tokens comes in; when all wait for it, let them go.
		const burst = 32
		reads := store.readCount()
		r.lock <- struct{}{}
		var wg sync.WaitGroup
		for range burst {
			wg.Go(func() { wantInvalid(t, iss, unknown, "a token of an unknown kid") })
		}
		synctest.Wait()
		<-r.lock
		wg.Wait()
		if got := store.readCount() - reads; got != 1 {
			t.Errorf("store reads for %d tokens of unknown kids at once: got %d, want 1", burst, got)
		}

		// Right after, another such token waits out the second, then reloads.
		start := time.Now()
		wantInvalid(t, iss, unknown, "a token of an unknown kid")
		times := store.readTimes()
		if got := len(times) - reads; got != 2 {
			t.Fatalf("store reads: got %d, want 2", got)
		}
		if gap := times[len(times)-1].Sub(times[len(times)-2]); gap != UnknownKidReload {
			t.Errorf("time between the reloads: got %v, want %v", gap, UnknownKidReload)
		}
		if waited := time.Since(start); waited != UnknownKidReload {
			t.Errorf("Verify waited %v, want %v", waited, UnknownKidReload)
		}

		// Neither a kid that is no thumbprint nor a known kid reloads.
		reads = store.readCount()
		time.Sleep(time.Minute)
		wantInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, otherEd25519(t), map[string]any{"kid": "k2"}, goodClaims(nil)), "kid k2")
		wantInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, otherEd25519(t), map[string]any{"kid": nil}, goodClaims(nil)), "no kid")
		wantInvalid(t, iss, sign(t, jwt.SigningMethodEdDSA, otherEd25519(t), map[string]any{"kid": iss.KeyID()}, goodClaims(nil)), "our kid, another key")
		wantValid(t, iss, mustIssue(t, iss), "our own token")
		if got := store.readCount() - reads; got != 0 {
			t.Errorf("store reads: got %d, want none", got)
		}
	})
}

// TestKeyRingStoreDown: while the store fails or hangs, the ring keeps
// the keys it has, Verify of an unknown kid gives up after the reload's
// timeout, and the next reload once the store is back picks up the
// rotation it missed.
func TestKeyRingStoreDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &memKeys{}
		a, b := mustRing(t, store), mustRing(t, store)
		k2 := otherEd25519(t)
		if err := store.RotateSigningKey(ctx, k2, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := a.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		newTok := mustIssue(t, a.Issuer())
		oldTok := mustIssue(t, b.Issuer())

		store.set(func(m *memKeys) { m.fail = errors.New("connection refused") })
		time.Sleep(time.Minute)
		if err := b.Reload(ctx); err == nil {
			t.Error("Reload with the store failing: got nil error, want one")
		}
		wantValid(t, b.Issuer(), oldTok, "a known kid's token, the store failing")
		wantInvalid(t, b.Issuer(), newTok, "an unknown kid's token, the store failing")

		store.set(func(m *memKeys) { m.fail, m.gate = nil, make(chan struct{}) })
		time.Sleep(time.Minute)
		start := time.Now()
		wantInvalid(t, b.Issuer(), newTok, "an unknown kid's token, the store hanging")
		if waited := time.Since(start); waited != reloadTimeout {
			t.Errorf("Verify waited %v for a hung store, want the reload timeout %v", waited, reloadTimeout)
		}

		store.set(func(m *memKeys) { m.gate = nil })
		time.Sleep(time.Minute)
		wantValid(t, b.Issuer(), newTok, "the new key's token, the store back")
		wantValid(t, b.Issuer(), oldTok, "the old key's token, the store back")
	})
}

// TestKeyRingRun: Run picks up a rotation within its interval and drops
// what retention no longer keeps, from the set and the store. (A day's
// interval, not ReloadInterval: the bubble's clock runs through a year.)
func TestKeyRingRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		const every = 24 * time.Hour
		store := &memKeys{}
		r := mustRing(t, store)
		oldKid := r.Issuer().KeyID()
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Run(ctx, every, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}()
		k2 := otherEd25519(t)
		if err := store.RotateSigningKey(ctx, k2, time.Now()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(every)
		synctest.Wait()
		if got, want := jwksKids(t, r.Issuer()), []string{kidOf(k2), oldKid}; !slices.Equal(got, want) {
			t.Errorf("JWKS kids an interval after the rotation: got %v, want %v", got, want)
		}
		time.Sleep(KeyRetention + every)
		synctest.Wait()
		if got, want := jwksKids(t, r.Issuer()), []string{kidOf(k2)}; !slices.Equal(got, want) {
			t.Errorf("JWKS kids after retention: got %v, want %v", got, want)
		}
		store.set(func(m *memKeys) {
			if len(m.keys) != 1 {
				t.Errorf("store keys after retention: got %d, want 1", len(m.keys))
			}
		})
		cancel()
		<-done
	})
}
