package sessions

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"idleguard/server/pos"
	"idleguard/server/protocol"
	"idleguard/server/token"
)

// A valid signature is not enough: the token's session must be alive and
// belong to the token's user, who must still exist.
func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// token returns the token to present, after whatever the case needs.
		token  func(t *testing.T, f *fixture, in SignedIn) string
		code   string          // "" for accepted
		reason protocol.Reason // for a session that has ended
	}{
		{name: "own token", token: func(t *testing.T, f *fixture, in SignedIn) string { return in.Token }},
		{name: "another user's session", code: pos.EUNAUTHORIZED,
			token: func(t *testing.T, f *fixture, in SignedIn) string {
				f.login(t, "other")
				tok, _, err := f.svc.tokens.Issue(pos.DefaultDomain, "other", in.Claims.SessionID, t0.Add(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}},
		{name: "a session that never existed", code: pos.EUNAUTHORIZED, reason: protocol.ReasonRevoked,
			token: func(t *testing.T, f *fixture, in SignedIn) string {
				tok, _, err := f.svc.tokens.Issue(pos.DefaultDomain, "cashier", pos.NewSessionID(), t0.Add(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}},
		{name: "deleted user", code: pos.EUNAUTHORIZED, reason: protocol.ReasonRevoked,
			token: func(t *testing.T, f *fixture, in SignedIn) string {
				if _, err := f.store.DeleteUser(ctx, pos.DefaultDomain, "cashier", t0); err != nil {
					t.Fatal(err)
				}
				return in.Token
			}},
		{name: "signed out", code: pos.EUNAUTHORIZED, reason: protocol.ReasonSignedOut,
			token: func(t *testing.T, f *fixture, in SignedIn) string {
				f.svc.Logout(ctx, in.Claims.SessionID)
				return in.Token
			}},
		{name: "another key", code: pos.EUNAUTHORIZED,
			token: func(t *testing.T, f *fixture, in SignedIn) string {
				_, key, _ := ed25519.GenerateKey(rand.Reader)
				other := token.New(key, token.Config{Issuer: token.DefaultIssuer, Audience: token.DefaultAudience, Now: f.clock.Now})
				tok, _, err := other.Issue(pos.DefaultDomain, "cashier", in.Claims.SessionID, t0.Add(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}},
		{name: "not a token", code: pos.EUNAUTHORIZED,
			token: func(t *testing.T, f *fixture, in SignedIn) string { return "eyJhbGciOiJub25lIn0.e30." }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			in := f.login(t, "cashier")
			p, err := f.svc.Authenticate(ctx, pos.DefaultDomain, tc.token(t, f, in))
			if got := pos.ErrorCode(err); got != tc.code {
				t.Fatalf("Authenticate: got code %q (%v), want %q", got, err, tc.code)
			}
			var ended *EndedError
			switch {
			case tc.code == "":
				if p.User.Name != "cashier" || p.SessionID != in.Claims.SessionID || p.Expired {
					t.Errorf("principal: got %s %s expired=%v, want cashier's live session", p.User.Name, ShortID(p.SessionID), p.Expired)
				}
			case tc.reason != protocol.ReasonNone:
				if !errors.As(err, &ended) || ended.Reason != tc.reason {
					t.Errorf("Authenticate: got %#v, want an ended session with reason %v", err, tc.reason)
				}
			case errors.As(err, &ended):
				t.Errorf("Authenticate: got an ended session (%v), want a refused token", ended.Reason)
			}
		})
	}
}

// A token whose exp has passed while activity kept its session alive is
// accepted, marked Expired, and Refresh hands a new one ending at the
// session's deadline.
func TestAuthenticateExpiredTokenOfLiveSession(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := f.login(t, "cashier")
	sid := in.Claims.SessionID
	c, _ := f.connect(t, sid)
	f.clock.Advance(50 * time.Second)
	c.activity(0) // the deadline moves to t0+110 s; a renewed token goes to the socket
	f.clock.Advance(token.Leeway + 11*time.Second)

	p, err := f.svc.Authenticate(ctx, pos.DefaultDomain, in.Token)
	if err != nil {
		t.Fatalf("Authenticate the sign-in token after its exp: got %v, want accepted", err)
	}
	if want := 110*time.Second - 50*time.Second - token.Leeway - 11*time.Second; !p.Expired || p.Remaining != want {
		t.Fatalf("principal: got expired=%v remaining=%v, want expired with %v left", p.Expired, p.Remaining, want)
	}
	tok, claims, err := f.svc.Refresh(p)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if want := t0.Add(110 * time.Second); !claims.ExpiresAt.Equal(want) {
		t.Errorf("refreshed exp: got %v, want the deadline %v", claims.ExpiresAt, want)
	}
	p2, err := f.svc.Authenticate(ctx, pos.DefaultDomain, tok)
	if err != nil || p2.Expired || p2.SessionID != sid {
		t.Errorf("Authenticate the refreshed token: got expired=%v sid=%s err=%v, want valid for %s", p2.Expired, ShortID(p2.SessionID), err, ShortID(sid))
	}

	// Refresh is for live sessions only.
	f.svc.Logout(ctx, sid)
	if _, _, err := f.svc.Refresh(p); pos.ErrorCode(err) != pos.EUNAUTHORIZED {
		t.Errorf("Refresh after sign-out: got %v, want unauthorized", err)
	}
}

// Signing out, by the API or from a socket, closes every socket of the
// session with reason signed_out, is in the store at once, and leaves the
// user's other sessions alone.
func TestLogout(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		logout func(t *testing.T, f *fixture, sid string, tab *socket)
	}{
		{"Logout", func(t *testing.T, f *fixture, sid string, _ *socket) {
			if err := f.svc.Logout(ctx, sid); err != nil {
				t.Fatalf("Logout: %v", err)
			}
		}},
		{"signout frame", func(t *testing.T, f *fixture, _ string, tab *socket) {
			tab.frame(protocol.Message{Kind: protocol.SignOut})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			in := f.login(t, "cashier")
			sid := in.Claims.SessionID
			keep := f.login(t, "cashier") // the same user at another till
			a, _ := f.connect(t, sid)
			b, _ := f.connect(t, sid)
			k, _ := f.connect(t, keep.Claims.SessionID)
			f.clock.Advance(3 * time.Second)

			tc.logout(t, f, sid, b)
			wantLines(t, "the port", f.socks.takeAll(), sid+" signout signed_out 60")
			for name, c := range map[string]*socket{"a": a, "b": b} {
				wantLines(t, "tab "+name, c.take(), "logout reason=signed_out expiration=60", "close 4002 signed_out")
			}
			wantLines(t, "the other session's tab", k.take())

			got := f.session(t, sid) // no flush: written at once
			if !got.Revoked || got.RevokedReason != protocol.ReasonSignedOut || !got.RevokedAt.Equal(t0.Add(3*time.Second)) {
				t.Errorf("stored: got revoked=%v reason=%v at %v, want signed_out at %v",
					got.Revoked, got.RevokedReason, got.RevokedAt, t0.Add(3*time.Second))
			}
			if got := f.endedReason(t, in.Token); got != protocol.ReasonSignedOut {
				t.Errorf("Authenticate after sign-out: got reason %v, want signed_out", got)
			}
			if _, err := f.svc.Authenticate(ctx, pos.DefaultDomain, keep.Token); err != nil {
				t.Errorf("the other session: got %v, want alive", err)
			}
			// It never comes back: no warning, no expiry later.
			f.clock.Advance(2 * time.Minute)
			if got := f.socks.take(sid); len(got) != 0 {
				t.Errorf("after sign-out: got %q, want nothing", got)
			}
		})
	}
}

// A server that starts again after the clock passed a session's deadline
// ends it as idle at once; one that starts within the deadline keeps it,
// counting from the last activity written before it stopped.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		downtime time.Duration
	}{
		{"into an expired session", 2 * time.Minute},
		{"into a live session", 20 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			in := f.login(t, "cashier")
			sid := in.Claims.SessionID
			c, _ := f.connect(t, sid)
			f.clock.Advance(10 * time.Second)
			c.activity(0) // last activity t0+10 s: the deadline is t0+70 s
			old := f.socks
			if err := f.run(t)(); err != nil {
				t.Fatalf("Run's final flush: %v", err)
			}

			f.clock.Advance(tc.downtime)
			wantLines(t, "the stopped server", old.takeAll())
			f.start(t)
			if tc.downtime < time.Minute {
				st, ok := f.svc.tracker.Status(sid)
				if want := 60*time.Second - tc.downtime; !ok || st.Remaining != want {
					t.Fatalf("after restart: got remaining %v alive %v, want %v", st.Remaining, ok, want)
				}
				if _, err := f.svc.Authenticate(ctx, pos.DefaultDomain, in.Token); err != nil {
					t.Fatalf("Authenticate after restart: got %v, want alive", err)
				}
				return
			}

			// Past its deadline before its idle clock fired: refused, as idle.
			if got := f.endedReason(t, in.Token); got != protocol.ReasonIdle {
				t.Errorf("Authenticate at start: got reason %v, want idle", got)
			}
			f.clock.Advance(0) // timers due now run
			wantLines(t, "at start", f.socks.take(sid), "signout idle 60")
			if got := f.endedReason(t, in.Token); got != protocol.ReasonIdle {
				t.Errorf("Authenticate after the expiry: got reason %v, want idle", got)
			}
			if err := f.svc.flush(ctx); err != nil {
				t.Fatal(err)
			}
			if got := f.session(t, sid); !got.Revoked || got.RevokedReason != protocol.ReasonIdle {
				t.Errorf("stored: got revoked=%v reason=%v, want idle", got.Revoked, got.RevokedReason)
			}
		})
	}
}
