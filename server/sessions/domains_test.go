package sessions

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/seclog"
)

// The second domain of these tests: the same user names as default, its
// own password and its own Expiration Time, 90 s (a 22.5 s warning lead).
const (
	globex           = "globex"
	globexPassword   = "globex-pw"
	globexExpiration = 90
)

// addGlobex creates domain globex in the fixture's store, as the CLI
// would: the running service learns of it from the domain log, a starting
// one from the store.
func (f *fixture) addGlobex(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := f.store.AddDomain(ctx, globex, t0); err != nil {
		t.Fatalf("AddDomain: %v", err)
	}
	if err := seedDomain(ctx, f.store.DB, globex, globexPassword, globexExpiration); err != nil {
		t.Fatalf("seed %s: %v", globex, err)
	}
}

// newTwoDomainFixture is newFixture with globex added before the service
// started.
func newTwoDomainFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	f.addGlobex(t)
	f.start(t)
	return f
}

// signIn is one sign-in attempt, its outcome unjudged.
func (f *fixture) signIn(domain, user, password, addr string) (SignedIn, error) {
	return f.svc.Login(context.Background(), Credentials{Domain: domain, Username: user, Password: password, Addr: addr})
}

// loginTo signs user in to domain with password, failing the test if it
// is refused.
func (f *fixture) loginTo(t *testing.T, domain, user, password string) SignedIn {
	t.Helper()
	in, err := f.signIn(domain, user, password, "10.0.0.1")
	if err != nil {
		t.Fatalf("login %s/%s: %v", domain, user, err)
	}
	return in
}

// openTillIn is openTill in domain.
func (f *fixture) openTillIn(t *testing.T, domain, user, password string) till {
	t.Helper()
	in := f.loginTo(t, domain, user, password)
	tab, _ := f.connectIn(t, domain, in.Claims.SessionID)
	return till{in: in, sid: in.Claims.SessionID, tab: tab}
}

// userIn is a domain's user as the store has it, permissions filled in.
func (f *fixture) userIn(t *testing.T, domain, name string) pos.User {
	t.Helper()
	u, err := f.store.UserByName(context.Background(), domain, name)
	if err != nil {
		t.Fatalf("user %s/%s: %v", domain, name, err)
	}
	return u
}

// settings is the setting the service has in force in domain.
func (f *fixture) settings(t *testing.T, domain string) SettingsView {
	t.Helper()
	v, err := f.svc.Settings(domain)
	if err != nil {
		t.Fatalf("Settings(%s): %v", domain, err)
	}
	return v
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := pos.ErrorCode(err); got != code {
		t.Errorf("%s: got code %q (%v), want %q", what, got, err, code)
	}
}

// The same user name in two domains is two users with two passwords: each
// signs in to its own domain only, whether the domain existed when the
// service started or was added while it ran (read from the domain log at
// the next flush).
func TestSameNameInTwoDomains(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) *fixture
	}{
		{"known at start", newTwoDomainFixture},
		{"added from the domain log", func(t *testing.T) *fixture {
			f := newFixture(t)
			f.run(t)
			f.addGlobex(t)
			if f.svc.Serves(globex) {
				t.Fatal("Serves before the domain log was read: got true, want false")
			}
			_, err := f.signIn(globex, "cashier", globexPassword, "10.0.0.1")
			wantCode(t, "Login before the domain log was read", err, pos.ENOTFOUND)
			f.clock.Advance(time.Second) // the flush tick
			waitFor(t, "the domain log's addition", func() bool { return f.svc.Serves(globex) })
			return f
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.setup(t)
			if n := f.svc.Domains(); n != 2 || !f.svc.Serves(pos.DefaultDomain) || !f.svc.Serves(globex) {
				t.Fatalf("domains: got %d, serves default %v, globex %v; want both", n, f.svc.Serves(pos.DefaultDomain), f.svc.Serves(globex))
			}
			if got := f.settings(t, globex); got.ExpirationSeconds != globexExpiration || got.UpdatedBy != "fixture" {
				t.Errorf("Settings(globex): got %+v, want %d s by fixture", got, globexExpiration)
			}
			if got := f.settings(t, pos.DefaultDomain).ExpirationSeconds; got != fixtureExpiration {
				t.Errorf("Settings(default): got %d s, want %d", got, fixtureExpiration)
			}

			passwords := map[string]string{pos.DefaultDomain: "demo", globex: globexPassword}
			ids := map[int64]string{}
			for domain, password := range passwords {
				in := f.loginTo(t, domain, "cashier", password)
				if in.User.Domain != domain || in.Claims.Domain != domain || in.Claims.Subject != "cashier" {
					t.Errorf("sign-in to %s: got user of %q, token of %q for %q, want %s's cashier", domain, in.User.Domain, in.Claims.Domain, in.Claims.Subject, domain)
				}
				ids[in.User.ID] = domain
				p, err := f.svc.Authenticate(ctx, domain, in.Token)
				if err != nil || p.User.Domain != domain || p.User.ID != in.User.ID {
					t.Errorf("Authenticate in %s: got user %d of %q, %v; want user %d of %s", domain, p.User.ID, p.User.Domain, err, in.User.ID, domain)
				}
				for other, wrong := range passwords {
					if other == domain {
						continue
					}
					_, err := f.signIn(domain, "cashier", wrong, "10.0.0.1")
					wantCode(t, "sign-in to "+domain+" with "+other+"'s password", err, pos.EUNAUTHORIZED)
				}
			}
			if len(ids) != 2 {
				t.Errorf("user ids: got %v, want one per domain", ids)
			}
		})
	}
}

// A token of one domain is refused by another as if it were forged, though
// this server signed it; so is a token naming a domain whose session is
// another's.
func TestTokenOfAnotherDomainRefused(t *testing.T) {
	ctx := context.Background()
	f := newTwoDomainFixture(t)
	// The security log counts a token presented to a domain not its own.
	f.svc.sec = seclog.New(slog.New(slog.NewTextHandler(io.Discard, nil)), f.clock)
	home := f.loginTo(t, pos.DefaultDomain, "cashier", "demo")
	away := f.loginTo(t, globex, "cashier", globexPassword)
	if c, err := f.svc.tokens.Verify(home.Token); err != nil || c.Domain != pos.DefaultDomain {
		t.Fatalf("Verify default's token: got domain %q, %v; want a valid token of default", c.Domain, err)
	}
	// Tokens this server signed that name one domain for the other's session.
	forged := func(domain, sid string) string {
		tok, _, err := f.svc.tokens.Issue(domain, "cashier", sid, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name, domain, token string
		logged              bool // as a token of another domain
	}{
		{"default's token in globex", globex, home.Token, true},
		{"globex's token in default", pos.DefaultDomain, away.Token, true},
		{"a globex token for default's session", globex, forged(globex, home.Claims.SessionID), false},
		{"a default token for globex's session", pos.DefaultDomain, forged(pos.DefaultDomain, away.Claims.SessionID), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.svc.SecurityCounts()[string(seclog.TokenOtherDomain)]
			_, err := f.svc.Authenticate(ctx, tc.domain, tc.token)
			wantCode(t, "Authenticate", err, pos.EUNAUTHORIZED)
			var ended *EndedError
			if errors.As(err, &ended) {
				t.Errorf("Authenticate: got an ended session (%v), want a refused token", ended.Reason)
			}
			got := f.svc.SecurityCounts()[string(seclog.TokenOtherDomain)] - before
			var want uint64
			if tc.logged {
				want = 1
			}
			if got != want {
				t.Errorf("security log: got %d %s events, want %d", got, seclog.TokenOtherDomain, want)
			}
		})
	}
	// Refusing them ended nothing.
	for domain, in := range map[string]SignedIn{pos.DefaultDomain: home, globex: away} {
		if _, err := f.svc.Authenticate(ctx, domain, in.Token); err != nil {
			t.Errorf("Authenticate %s's own token afterwards: got %v, want alive", domain, err)
		}
	}
}

// An admin's change of the Expiration Time is their own domain's: the
// other domain's setting, change record, sockets and deadlines stay as
// they were, and its session idle longer than the new time lives on.
func TestSettingChangeStaysInItsDomain(t *testing.T) {
	ctx := context.Background()
	f := newTwoDomainFixture(t)
	a1 := f.openTillIn(t, pos.DefaultDomain, "cashier", "demo") // idle 40 s at the change
	g := f.openTillIn(t, globex, "cashier", globexPassword)     // idle 40 s too
	f.clock.Advance(30 * time.Second)
	a2 := f.openTillIn(t, pos.DefaultDomain, "other", "demo") // idle 10 s
	f.clock.Advance(10 * time.Second)
	wantLines(t, "before the change", f.socks.takeAll())
	globexBefore := f.settings(t, globex)
	globexChanges, err := f.svc.Changes(ctx, globex, 100)
	if err != nil {
		t.Fatal(err)
	}

	v, err := f.svc.UpdateExpiration(ctx, f.userIn(t, pos.DefaultDomain, "admin"), 30)
	if err != nil || v.ExpirationSeconds != 30 {
		t.Fatalf("UpdateExpiration in default: got %d s, %v; want 30 s", v.ExpirationSeconds, err)
	}
	wantLines(t, "default's idle session", f.socks.take(a1.sid), "signout setting_changed 30")
	wantLines(t, "default's other session", f.socks.take(a2.sid), "send state remaining=20000 expiration=30 warn=7500 report=3000")
	wantLines(t, "globex's session", f.socks.take(g.sid))
	wantLines(t, "globex's tab", g.tab.take())
	wantLines(t, "the port besides", f.socks.takeAll())

	if got := f.settings(t, globex); !reflect.DeepEqual(got, globexBefore) {
		t.Errorf("Settings(globex): got %+v, want unchanged %+v", got, globexBefore)
	}
	if stored, err := f.store.Settings(ctx, globex); err != nil || stored.ExpirationSeconds != globexExpiration || stored.UpdatedBy != "fixture" {
		t.Errorf("globex's stored setting: got %+v %v, want %d s by fixture", stored, err, globexExpiration)
	}
	if got, err := f.svc.Changes(ctx, globex, 100); err != nil || len(got) != len(globexChanges) {
		t.Errorf("globex's change record: got %d changes (%v), want %d", len(got), err, len(globexChanges))
	}
	if got, err := f.svc.Changes(ctx, pos.DefaultDomain, 1); err != nil || len(got) != 1 || got[0].By != "admin" || got[0].Old != 60 || got[0].New != 30 {
		t.Errorf("default's newest change: got %+v %v, want admin's 60 -> 30", got, err)
	}
	if st, ok := f.svc.tracker.Status(g.sid); !ok || st.Remaining != 50*time.Second {
		t.Fatalf("globex's session: got remaining %v alive %v, want 50s of its 90", st.Remaining, ok)
	}
	if _, err := f.svc.Authenticate(ctx, globex, g.in.Token); err != nil {
		t.Fatalf("Authenticate globex's session: got %v, want alive", err)
	}

	// globex's session keeps its own clock: warned 22.5 s before t0+90 s,
	// ended at t0+90 s, under globex's 90 s.
	f.clock.Advance(27500*time.Millisecond - time.Millisecond)
	wantLines(t, "globex's session before its warning", f.socks.take(g.sid))
	f.clock.Advance(time.Millisecond)
	wantLines(t, "globex's warning", f.socks.take(g.sid), "send warning remaining=22500")
	f.clock.Advance(22500*time.Millisecond - time.Microsecond)
	wantLines(t, "globex's session before its deadline", f.socks.take(g.sid))
	f.clock.Advance(time.Microsecond)
	wantLines(t, "globex's deadline", f.socks.take(g.sid), "signout idle 90")
	wantLines(t, "globex's tab at the end", g.tab.take(), "warning remaining=22500", "logout reason=idle expiration=90", "close 4001 idle")
	f.socks.takeAll()

	// The other way round: globex's admin changes globex alone.
	a3 := f.openTillIn(t, pos.DefaultDomain, "cashier", "demo")
	if _, err := f.svc.UpdateExpiration(ctx, f.userIn(t, globex, "admin"), 120); err != nil {
		t.Fatalf("UpdateExpiration in globex: %v", err)
	}
	wantLines(t, "default's session after globex's change", f.socks.take(a3.sid))
	wantLines(t, "default's tab after globex's change", a3.tab.take())
	if got := f.settings(t, pos.DefaultDomain); got.ExpirationSeconds != 30 || got.UpdatedBy != "admin" {
		t.Errorf("Settings(default) after globex's change: got %+v, want 30 s by admin", got)
	}
	if got := f.settings(t, globex).ExpirationSeconds; got != 120 {
		t.Errorf("Settings(globex): got %d s, want 120", got)
	}
}

// Failed sign-ins count against their own domain's buckets: failures for
// default's admin (or a spray of names) from an address hold back neither
// globex's admin nor globex's sign-ins from that address.
func TestThrottlePerDomain(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(i int) (user, password string) // the i-th failed attempt in default
		next string                              // a later attempt in default, which must wait
	}{
		{"one user", func(int) (string, string) { return "admin", "wrong" }, "admin"},
		{"sprayed names", func(i int) (string, string) { return "nobody" + string(rune('a'+i)), "wrong" }, "admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTwoDomainFixture(t)
			const addr = "10.0.0.9"
			throttled := false
			for i := 0; i < 26 && !throttled; i++ {
				user, password := tc.fail(i)
				_, err := f.signIn(pos.DefaultDomain, user, password, addr)
				switch pos.ErrorCode(err) {
				case pos.ETOOMANY:
					throttled = true
				case pos.EUNAUTHORIZED:
				default:
					t.Fatalf("failed sign-in %d: got %v, want unauthorized or throttled", i, err)
				}
			}
			if !throttled {
				t.Fatal("default: never throttled")
			}
			_, err := f.signIn(pos.DefaultDomain, tc.next, "wrong", addr)
			wantCode(t, "default after the failures", err, pos.ETOOMANY)

			_, err = f.signIn(globex, "admin", "wrong", addr)
			wantCode(t, "globex's admin, wrong password, same address", err, pos.EUNAUTHORIZED)
			if _, err := f.signIn(globex, "admin", globexPassword, addr); err != nil {
				t.Errorf("globex's admin, same address: got %v, want signed in", err)
			}
			// globex's success forgave nothing of default's.
			_, err = f.signIn(pos.DefaultDomain, "admin", "demo", addr)
			wantCode(t, "default's admin after globex's success", err, pos.ETOOMANY)
		})
	}
}

// A domain removed (with -force: it has users) is, once the node reads the
// domain log, no longer served: its sessions' sockets are signed out as
// revoked, its tokens refused, sign-in to it and its setting not found.
// The other domain is untouched.
func TestDomainRemoved(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		read func(t *testing.T, f *fixture)
	}{
		{"by the flusher", func(t *testing.T, f *fixture) {
			f.run(t)
			f.clock.Advance(time.Second) // the flush tick
			waitFor(t, "the domain log's removal", func() bool { return !f.svc.Serves(globex) })
		}},
		{"from the domain log alone", func(t *testing.T, f *fixture) {
			// Before the session end log: the domain's removal signs its
			// sockets out by itself.
			if err := f.svc.readDomains(ctx); err != nil {
				t.Fatalf("readDomains: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTwoDomainFixture(t)
			g1 := f.openTillIn(t, globex, "cashier", globexPassword)
			g2 := f.openTillIn(t, globex, "admin", globexPassword)
			keep := f.openTillIn(t, pos.DefaultDomain, "cashier", "demo")
			f.clock.Advance(5 * time.Second)
			now := f.clock.Now().Round(0)

			if _, err := f.store.RemoveDomain(ctx, globex, false, now); pos.ErrorCode(err) != pos.ECONFLICT {
				t.Fatalf("RemoveDomain without force: got %v, want a conflict (it has users)", err)
			}
			ended, err := f.store.RemoveDomain(ctx, globex, true, now)
			if err != nil || len(ended) != 2 {
				t.Fatalf("RemoveDomain -force: got %v %v, want globex's two sessions", ended, err)
			}
			// Not read yet: the store already says the sessions ended.
			if got := f.endedReasonIn(t, globex, g1.in.Token); got != protocol.ReasonRevoked {
				t.Errorf("Authenticate before the log is read: got reason %v, want revoked", got)
			}

			tc.read(t, f)
			for name, tl := range map[string]till{"cashier": g1, "admin": g2} {
				wantLines(t, "globex's "+name, f.socks.take(tl.sid), "signout revoked 90")
				wantLines(t, "globex's "+name+"'s tab", tl.tab.take(), "logout reason=revoked expiration=90", "close 4004 revoked")
			}
			wantLines(t, "default's session", f.socks.take(keep.sid))
			wantLines(t, "default's tab", keep.tab.take())

			if f.svc.Serves(globex) || f.svc.Domains() != 1 || !f.svc.Serves(pos.DefaultDomain) {
				t.Errorf("after the removal: got serves globex %v, %d domains; want default alone", f.svc.Serves(globex), f.svc.Domains())
			}
			if n, live := f.svc.tracker.DomainLen(globex), f.svc.Live(); n != 0 || live != 1 {
				t.Errorf("idle clock: got %d globex sessions and %d live, want 0 and default's one", n, live)
			}
			_, err = f.signIn(globex, "cashier", globexPassword, "10.0.0.1")
			wantCode(t, "Login to the removed domain", err, pos.ENOTFOUND)
			_, err = f.svc.Settings(globex)
			wantCode(t, "Settings of the removed domain", err, pos.ENOTFOUND)
			if got := f.endedReasonIn(t, globex, g1.in.Token); got != protocol.ReasonRevoked {
				t.Errorf("Authenticate after the removal: got reason %v, want revoked", got)
			}
			if _, err := f.svc.Authenticate(ctx, pos.DefaultDomain, keep.in.Token); err != nil {
				t.Errorf("default's session: got %v, want alive", err)
			}
			// The end log, read later, signs nobody out twice.
			f.svc.readEnds(ctx)
			wantLines(t, "the end log after the removal", f.socks.takeAll())
		})
	}
}

// A domain removed and added again under the same name, both read in one
// go, is a new, empty domain: the default setting, none of the old
// sessions.
func TestDomainAddedAgain(t *testing.T) {
	ctx := context.Background()
	f := newTwoDomainFixture(t)
	old := f.login(t, "cashier") // default's, to show it is left alone
	g := f.loginTo(t, globex, "cashier", globexPassword)
	now := f.clock.Now().Round(0)
	if _, err := f.store.RemoveDomain(ctx, globex, true, now); err != nil {
		t.Fatal(err)
	}
	if err := f.store.AddDomain(ctx, globex, now); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.readDomains(ctx); err != nil {
		t.Fatalf("readDomains: %v", err)
	}
	if !f.svc.Serves(globex) {
		t.Fatal("Serves(globex) after it was added again: got false, want true")
	}
	if got := f.settings(t, globex).ExpirationSeconds; got != pos.DefaultExpirationSeconds {
		t.Errorf("Settings(globex): got %d s, want the default %d", got, pos.DefaultExpirationSeconds)
	}
	wantLines(t, "globex's old session", f.socks.take(g.Claims.SessionID), "signout revoked 90")
	if got := f.endedReasonIn(t, globex, g.Token); got != protocol.ReasonRevoked {
		t.Errorf("Authenticate globex's old token: got reason %v, want revoked", got)
	}
	_, err := f.signIn(globex, "cashier", globexPassword, "10.0.0.1")
	wantCode(t, "sign-in as globex's old user", err, pos.EUNAUTHORIZED)
	if _, err := f.svc.Authenticate(ctx, pos.DefaultDomain, old.Token); err != nil {
		t.Errorf("default's session: got %v, want alive", err)
	}
}

// A node that starts again loads every domain's live sessions, each under
// its own domain's Expiration Time.
func TestRestartWithTwoDomains(t *testing.T) {
	ctx := context.Background()
	f := newTwoDomainFixture(t)
	home := f.login(t, "cashier")
	away := f.loginTo(t, globex, "cashier", globexPassword)
	if err := f.run(t)(); err != nil {
		t.Fatalf("Run's final flush: %v", err)
	}
	f.clock.Advance(70 * time.Second) // past default's 60 s, within globex's 90 s
	f.start(t)
	if got := f.endedReason(t, home.Token); got != protocol.ReasonIdle {
		t.Errorf("default's session after restart: got reason %v, want idle", got)
	}
	if st, ok := f.svc.tracker.Status(away.Claims.SessionID); !ok || st.Remaining != 20*time.Second {
		t.Errorf("globex's session after restart: got remaining %v alive %v, want 20s", st.Remaining, ok)
	}
	if _, err := f.svc.Authenticate(ctx, globex, away.Token); err != nil {
		t.Errorf("Authenticate globex's session after restart: got %v, want alive", err)
	}
}

// A domain the node does not serve has no setting, no sign-in and no
// change record; an admin naming it changes nothing.
func TestUnknownDomain(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const nosuch = "nosuch"
	if f.svc.Serves(nosuch) {
		t.Error("Serves(nosuch): got true, want false")
	}
	_, err := f.svc.Settings(nosuch)
	wantCode(t, "Settings", err, pos.ENOTFOUND)
	_, err = f.signIn(nosuch, "admin", "demo", "10.0.0.1")
	wantCode(t, "Login", err, pos.ENOTFOUND)
	_, err = f.svc.Changes(ctx, nosuch, 10)
	wantCode(t, "Changes", err, pos.ENOTFOUND)
	admin := f.user(t, "admin")
	admin.Domain = nosuch
	_, err = f.svc.UpdateExpiration(ctx, admin, 120)
	wantCode(t, "UpdateExpiration by an admin of an unknown domain", err, pos.ENOTFOUND)
	if got := f.settings(t, pos.DefaultDomain).ExpirationSeconds; got != fixtureExpiration {
		t.Errorf("Settings(default): got %d s, want %d unchanged", got, fixtureExpiration)
	}
	in := f.login(t, "cashier")
	_, err = f.svc.Authenticate(ctx, nosuch, in.Token)
	wantCode(t, "Authenticate default's token for an unknown domain", err, pos.EUNAUTHORIZED)
}
