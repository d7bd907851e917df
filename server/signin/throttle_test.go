package signin

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"idleguard/server/clock"
)

const (
	alice = "alice"
	till  = "10.0.0.7"
)

func newTestThrottle(tb testing.TB, cfg ThrottleConfig) (*Throttle, *clock.Fake) {
	tb.Helper()
	c := clock.NewFake(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	return NewThrottle(c, cfg), c
}

// mustAttempt runs one attempt that Check must allow, ending as ok says.
func mustAttempt(tb testing.TB, th *Throttle, user, addr string, ok bool) {
	tb.Helper()
	if w := th.Check(user, addr); w != 0 {
		tb.Fatalf("Check(%q, %q) = %v, want 0", user, addr, w)
	}
	if ok {
		th.Succeeded(user, addr)
	} else {
		th.Failed(user, addr)
	}
}

// fail makes one failed attempt whether or not Check allows it (an
// attacker ignoring Retry-After is still refused, so nothing is counted).
func fail(th *Throttle, user, addr string) {
	if th.Check(user, addr) == 0 {
		th.Failed(user, addr)
	}
}

// attack makes n failed attempts as fast as the throttle allows.
func attack(th *Throttle, c *clock.Fake, user, addr string, n int) {
	for range n {
		c.Advance(th.Check(user, addr))
		th.Check(user, addr)
		th.Failed(user, addr)
	}
}

func TestFiveWrongThenRightFromTheTill(t *testing.T) {
	th, _ := newTestThrottle(t, ThrottleConfig{})
	for range 5 {
		mustAttempt(t, th, alice, till, false)
	}
	mustAttempt(t, th, alice, till, true)
	if !th.Known(alice, till) {
		t.Fatal("Known after a success = false, want true")
	}
	// The success reset the pair: five more are free again.
	for range 5 {
		mustAttempt(t, th, alice, till, false)
	}
	if w := th.Check(alice, till); w != 0 {
		t.Fatalf("Check after 5 failures since the success = %v, want 0", w)
	}
}

func TestSuccessConsumesNothing(t *testing.T) {
	th, _ := newTestThrottle(t, ThrottleConfig{})
	for range 1000 {
		mustAttempt(t, th, alice, till, true)
	}
	if n := len(th.pairs.m) + len(th.users.m) + len(th.addrs.m); n != 0 {
		t.Fatalf("failure entries after 1000 successes = %d, want 0", n)
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	tests := []struct {
		name  string
		addr  func(i int) string // where failure i comes from
		user  func(i int) string
		free  int
		known bool
	}{
		{"pair", func(int) string { return till }, func(int) string { return alice }, 5, false},
		{"user from many addresses", func(i int) string { return fmt.Sprintf("198.51.100.%d", i) }, func(int) string { return alice }, 10, false},
		{"address spraying names", func(int) string { return till }, func(i int) string { return fmt.Sprint("user", i) }, 20, false},
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th, c := newTestThrottle(t, ThrottleConfig{})
			for i := range tt.free {
				mustAttempt(t, th, tt.user(i), tt.addr(i), false)
			}
			for j, w := range want {
				i := tt.free + j
				mustAttempt(t, th, tt.user(i), tt.addr(i), false)
				next := tt.user(i + 1)
				nextAddr := tt.addr(i + 1)
				if got := th.Check(next, nextAddr); got != w*time.Second {
					t.Fatalf("after failure %d: wait %v, want %v", i+1, got, w*time.Second)
				}
				c.Advance(w*time.Second - time.Microsecond)
				if got := th.Check(next, nextAddr); got != time.Microsecond {
					t.Fatalf("after failure %d, 1us early: wait %v, want 1us", i+1, got)
				}
				c.Advance(time.Microsecond)
			}
		})
	}
}

func TestSuccessResetsThePair(t *testing.T) {
	th, c := newTestThrottle(t, ThrottleConfig{})
	attack(th, c, alice, till, 8)
	if w := th.Check(alice, till); w != 4*time.Second {
		t.Fatalf("Check after 8 failures = %v, want 4s", w)
	}
	c.Advance(4 * time.Second)
	mustAttempt(t, th, alice, till, true)
	for range 5 {
		mustAttempt(t, th, alice, till, false)
	}
	if w := th.Check(alice, till); w != 0 {
		t.Fatalf("Check after a reset and 5 failures = %v, want 0", w)
	}
}

func TestAttackerCannotLockOutAKnownPair(t *testing.T) {
	th, c := newTestThrottle(t, ThrottleConfig{})
	mustAttempt(t, th, alice, till, true)
	c.Advance(time.Hour)

	// alice guessed from a thousand addresses, and many names sprayed from
	// the shop's own (NAT) address, as fast as the throttle lets anyone.
	for i := range 1000 {
		fail(th, alice, fmt.Sprintf("203.0.113.%d", i%250))
		fail(th, fmt.Sprint("guess", i), till)
		c.Advance(time.Second)
	}
	if w := th.Check(alice, "192.0.2.1"); w == 0 {
		t.Fatal("alice from a new address during the attack: wait 0, want backoff")
	}
	if w := th.Check("bob", till); w == 0 {
		t.Fatal("an unknown user from the sprayed address: wait 0, want backoff")
	}
	// The real cashier at their own till, right password after typos.
	for range 5 {
		mustAttempt(t, th, alice, till, false)
	}
	mustAttempt(t, th, alice, till, true)
}

func TestDecay(t *testing.T) {
	th, c := newTestThrottle(t, ThrottleConfig{})
	from := func(i int) string { return fmt.Sprintf("198.51.100.%d", i) }
	for i := range 11 {
		mustAttempt(t, th, alice, from(i), false)
	}
	if w := th.Check(alice, from(11)); w != time.Second {
		t.Fatalf("after 11 failures: wait %v, want 1s", w)
	}
	// One failure forgiven 15 min after the backoff: the 12th counts as
	// the 11th again (1 s, not 2 s).
	c.Advance(time.Second + 15*time.Minute)
	mustAttempt(t, th, alice, from(11), false)
	if w := th.Check(alice, from(12)); w != time.Second {
		t.Fatalf("after a forgiven failure and one more: wait %v, want 1s", w)
	}
	// Quiet long enough, every entry is swept.
	c.Advance(11*15*time.Minute + sweepEvery)
	th.Known(alice, till) // any call sweeps when due
	if n := len(th.pairs.m) + len(th.users.m) + len(th.addrs.m); n != 0 {
		t.Fatalf("entries after the failures were forgiven = %d, want 0", n)
	}
}

func TestKnownExpires(t *testing.T) {
	th, c := newTestThrottle(t, ThrottleConfig{})
	mustAttempt(t, th, alice, till, true)
	c.Advance(30*24*time.Hour - time.Second)
	if !th.Known(alice, till) {
		t.Fatal("Known just inside 30 days = false, want true")
	}
	c.Advance(time.Second)
	if th.Known(alice, till) {
		t.Fatal("Known after 30 days = true, want false")
	}
	c.Advance(sweepEvery)
	th.Known(alice, till)
	if n := len(th.known.m); n != 0 {
		t.Fatalf("known users after expiry = %d, want 0 (swept)", n)
	}
}

func TestConcurrentAttemptsCountAsFailures(t *testing.T) {
	th, c := newTestThrottle(t, ThrottleConfig{})
	// Six attempts in flight at once: as many as could run one by one
	// (five free and the one that starts the backoff).
	for i := range 6 {
		if w := th.Check(alice, till); w != 0 {
			t.Fatalf("attempt %d in flight: wait %v, want 0", i+1, w)
		}
	}
	if w := th.Check(alice, till); w != time.Second {
		t.Fatalf("seventh while six are in flight: wait %v, want 1s", w)
	}
	// Unresolved reservations lapse.
	c.Advance(reservationLapse)
	if w := th.Check(alice, till); w != 0 {
		t.Fatalf("after the reservations lapsed: wait %v, want 0", w)
	}
}

func TestIPv6CountsPer64(t *testing.T) {
	th, _ := newTestThrottle(t, ThrottleConfig{})
	for i := range 6 {
		mustAttempt(t, th, alice, fmt.Sprintf("2001:db8:1:2::%x", i+1), false)
	}
	if w := th.Check(alice, "2001:db8:1:2:ffff::1"); w != time.Second {
		t.Fatalf("another address in the same /64: wait %v, want 1s", w)
	}
	if w := th.Check(alice, "2001:db8:1:3::1"); w != 0 {
		t.Fatalf("another /64: wait %v, want 0", w)
	}
	if got, want := addrKey("::ffff:10.0.0.7"), "10.0.0.7"; got != want {
		t.Fatalf("addrKey(v4-mapped) = %q, want %q", got, want)
	}
}

func TestCapsHold(t *testing.T) {
	const maxEntries, keys = 1000, 100_000
	th, c := newTestThrottle(t, ThrottleConfig{MaxEntries: maxEntries})
	// The name under attack, deep in backoff, must survive the flood.
	attack(th, c, alice, "192.0.2.1", 40)
	for i := range keys {
		user, addr := fmt.Sprint("name", i), fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255)
		fail(th, user, addr)
		if i%10 == 0 {
			mustAttempt(t, th, user, addr+"0", true)
		}
	}
	for name, n := range map[string]int{"pairs": len(th.pairs.m), "users": len(th.users.m), "addrs": len(th.addrs.m), "known": len(th.known.m)} {
		if n > maxEntries {
			t.Errorf("%s: %d entries, want at most %d", name, n, maxEntries)
		}
	}
	if w := th.Check(alice, "192.0.2.2"); w == 0 {
		t.Error("alice under attack after the flood: wait 0, want backoff (her entry was evicted)")
	}

	// One account signing in from many addresses keeps only its newest few.
	for i := range 1000 {
		th.Succeeded("mallory", fmt.Sprintf("172.16.%d.%d", i>>8&255, i&255))
	}
	if n := len(th.known.m["mallory"]); n != 16 {
		t.Errorf("known addresses of one user = %d, want 16", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	th := NewThrottle(clock.Real{}, ThrottleConfig{MaxEntries: 64})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				user, addr := fmt.Sprint("u", i%100), fmt.Sprint("10.0.0.", g)
				if th.Check(user, addr) == 0 {
					if i%3 == 0 {
						th.Succeeded(user, addr)
					} else {
						th.Failed(user, addr)
					}
				}
				th.Known(user, addr)
			}
		})
	}
	wg.Wait()
}
