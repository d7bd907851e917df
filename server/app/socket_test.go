package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"idleguard/server/internal/apptest"
	"idleguard/server/protocol"
)

// Activity moves the deadline; when it stops, a warning and then the idle
// sign-out come, never before the Expiration Time has passed since the last
// activity.
func TestActivityExtendsDeadline(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	const expiration = 2 * time.Second
	apptest.SetExpiration(t, s.Base, 2)
	tok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	ws := apptest.DialSocket(t, s, tok, "")
	events := apptest.Watch(ws)
	if e := apptest.NextEvent(t, events); e.Frame.Kind != protocol.State || e.Frame.ExpirationS != 2 {
		t.Fatalf("first frame: got %q, want a state with expiration=2", e.Raw)
	}

	// 3 s of activity every 500 ms: longer than the Expiration Time.
	var lastActivity time.Time
	for start := time.Now(); time.Since(start) < 3*time.Second; {
		lastActivity = time.Now()
		apptest.Send(t, ws, "activity ago=0")
		time.Sleep(500 * time.Millisecond)
	}
	// Nothing may have signed the socket out while activity went on.
	for drained := false; !drained; {
		select {
		case e := <-events:
			if e.End || e.Frame.Kind == protocol.Logout {
				t.Fatalf("during activity: got %q (end %v), want the socket open", e.Raw, e.End)
			}
		default:
			drained = true
		}
	}

	var warned bool
	for {
		e := apptest.NextEvent(t, events)
		if e.End {
			t.Fatalf("socket closed (%d) without a logout frame", e.Code)
		}
		switch e.Frame.Kind {
		case protocol.Warning:
			warned = true
			if e.Frame.RemainingMs > expiration.Milliseconds() {
				t.Errorf("warning remaining: got %d ms, want <= %d", e.Frame.RemainingMs, expiration.Milliseconds())
			}
			continue
		case protocol.State:
			continue // a renewed token
		case protocol.Logout:
		default:
			t.Fatalf("got %q, want a warning or a logout", e.Raw)
		}
		if !warned {
			t.Errorf("logout came before any warning")
		}
		if e.Frame.Reason != protocol.ReasonIdle {
			t.Errorf("logout reason: got %v, want idle", e.Frame.Reason)
		}
		if idle := e.At.Sub(lastActivity); idle < expiration {
			t.Errorf("logout %v after the last activity, want >= %v (never before the deadline)", idle, expiration)
		}
		break
	}
	if e := apptest.NextEvent(t, events); !e.End || e.Code != protocol.CloseIdle {
		t.Errorf("after logout: got %q (end %v, code %d), want close %d", e.Raw, e.End, e.Code, protocol.CloseIdle)
	}
}

// At the deadline every socket of the session is signed out, and its token
// is refused from then on.
func TestIdleClosesEverySocket(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	apptest.SetExpiration(t, s.Base, 2)
	start := time.Now()
	tok, cookie := apptest.MustLogin(t, s.Base, "cashier", "demo")
	var sockets []*websocket.Conn
	for range 2 {
		sockets = append(sockets, apptest.DialSocket(t, s, tok, s.Base))
	}
	// A browser tab: the cookie, not a header.
	sockets = append(sockets, apptest.DialHeader(t, s, http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}, "Origin": {s.Base}}))
	for i, ws := range sockets {
		if m := apptest.ReadFrame(t, ws); m.Kind != protocol.State {
			t.Fatalf("socket %d: got %v first, want state", i, m.Kind)
		}
	}
	for i, ws := range sockets {
		apptest.WantSignOut(t, ws, protocol.ReasonIdle, protocol.CloseIdle)
		if idle := time.Since(start); idle < 2*time.Second {
			t.Errorf("socket %d signed out %v after sign-in, want >= 2s", i, idle)
		}
	}
	apptest.WantEnded(t, s, tok, "idle")
}

// Pings, pongs and sync frames keep the connection alive but are not
// activity: the session still ends at its deadline.
func TestPingsDoNotExtend(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	apptest.SetExpiration(t, s.Base, 2)
	start := time.Now()
	tok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	ws := apptest.DialSocket(t, s, tok, "")
	pongs := make(chan struct{}, 100)
	ws.SetPongHandler(func(string) error {
		select {
		case pongs <- struct{}{}:
		default:
		}
		return nil
	})
	events := apptest.Watch(ws)

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			deadline := time.Now().Add(time.Second)
			ws.WriteControl(websocket.PingMessage, []byte("p"), deadline)
			ws.WriteControl(websocket.PongMessage, nil, deadline) // unsolicited
			if i%2 == 0 {
				ws.SetWriteDeadline(deadline)
				ws.WriteMessage(websocket.TextMessage, []byte("sync"))
			}
		}
	}()

	lastRemaining := int64(1 << 62)
	states := 0
	for {
		e := apptest.NextEvent(t, events)
		if e.End {
			t.Fatalf("socket closed (%d) without a logout frame", e.Code)
		}
		if e.Frame.Kind == protocol.State {
			states++
			if e.Frame.RemainingMs > lastRemaining {
				t.Errorf("state remaining went up from %d to %d ms: something counted as activity", lastRemaining, e.Frame.RemainingMs)
			}
			lastRemaining = e.Frame.RemainingMs
			continue
		}
		if e.Frame.Kind == protocol.Warning {
			continue
		}
		if e.Frame.Kind != protocol.Logout || e.Frame.Reason != protocol.ReasonIdle {
			t.Fatalf("got %q, want logout reason=idle", e.Raw)
		}
		if idle := e.At.Sub(start); idle < 2*time.Second {
			t.Errorf("logout %v after sign-in, want >= 2s", idle)
		}
		break
	}
	if e := apptest.NextEvent(t, events); !e.End || e.Code != protocol.CloseIdle {
		t.Errorf("after logout: got %q (code %d), want close %d", e.Raw, e.Code, protocol.CloseIdle)
	}
	if states < 2 {
		t.Errorf("got %d state frames, want the sync frames answered", states)
	}
	if len(pongs) == 0 {
		t.Errorf("got no pong, want the server to have answered the pings")
	}
}

// A foreign Origin is refused before the upgrade; the allowlist replaces the
// server's own origin when given.
func TestSocketOrigin(t *testing.T) {
	t.Parallel()
	const self = "self" // stands for the server's own origin, s.Base
	type dial struct {
		origin string
		want   int
	}
	for _, tc := range []struct {
		name  string
		args  []string
		dials []dial
	}{
		{"default", nil, []dial{
			{"http://evil.example", http.StatusForbidden},
			{"null", http.StatusForbidden},
			{self, http.StatusSwitchingProtocols},
		}},
		{"allowlist", []string{"-origins", "http://pos.example"}, []dial{
			{"http://pos.example", http.StatusSwitchingProtocols},
			{self, http.StatusForbidden},
			{"http://evil.example", http.StatusForbidden},
			{"https://pos.example", http.StatusForbidden},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := apptest.Start(t, RunReady, tc.args...)
			tok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
			for _, d := range tc.dials {
				origin := d.origin
				if origin == self {
					origin = s.Base
				}
				h := apptest.Bearer(tok)
				h.Set("Origin", origin)
				if got := apptest.DialStatus(t, s, h); got != d.want {
					t.Errorf("Origin %s: got %d, want %d", origin, got, d.want)
				}
			}
		})
	}
}

// Signing out, over HTTP or from a socket, ends the session in every tab.
func TestLogoutEverywhere(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	t.Run("http", func(t *testing.T) {
		tok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
		a, b := apptest.DialSocket(t, s, tok, ""), apptest.DialSocket(t, s, tok, "")
		apptest.ReadFrame(t, a)
		apptest.ReadFrame(t, b)
		resp, body := apptest.Request(t, "POST", s.Base+"/api/logout", tok, "application/json", nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST /api/logout: got %d %s, want 204", resp.StatusCode, body)
		}
		if c := resp.Cookies(); len(c) != 1 || c[0].Name != "idleguard_token" || c[0].Value != "" || c[0].MaxAge >= 0 {
			t.Errorf("logout cookies: got %v, want idleguard_token cleared", resp.Header["Set-Cookie"])
		}
		apptest.WantSignOut(t, a, protocol.ReasonSignedOut, protocol.CloseSignedOut)
		apptest.WantSignOut(t, b, protocol.ReasonSignedOut, protocol.CloseSignedOut)
		apptest.WantEnded(t, s, tok, "signed_out")
	})
	t.Run("socket", func(t *testing.T) {
		tok, _ := apptest.MustLogin(t, s.Base, "viewer", "demo")
		a, b := apptest.DialSocket(t, s, tok, ""), apptest.DialSocket(t, s, tok, "")
		apptest.ReadFrame(t, a)
		apptest.ReadFrame(t, b)
		apptest.Send(t, a, "signout")
		apptest.WantSignOut(t, a, protocol.ReasonSignedOut, protocol.CloseSignedOut)
		apptest.WantSignOut(t, b, protocol.ReasonSignedOut, protocol.CloseSignedOut)
		apptest.WantEnded(t, s, tok, "signed_out")
	})
}

// Oversized, malformed and too many frames close the socket with the
// documented codes; a session cannot open more than -max-tabs sockets.
func TestSocketHygiene(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady, "-max-tabs", "2")
	for _, tc := range []struct {
		name   string
		frames []string
		want   int
	}{
		{"too big", []string{"activity ago=0 x=" + strings.Repeat("1", protocol.MaxClientFrame)}, protocol.CloseTooBig},
		{"malformed", []string{"activity ago=-1"}, protocol.ClosePolicy},
		{"unknown kind", []string{"hello"}, protocol.ClosePolicy},
		{"server kind", []string{"logout reason=idle"}, protocol.ClosePolicy},
		// More than the hub's burst allowance (256), at once.
		{"flood", repeat("activity ago=0", 600), protocol.ClosePolicy},
	} {
		user := []string{"cashier", "viewer"}[len(tc.frames)%2]
		t.Run(tc.name, func(t *testing.T) {
			tok, _ := apptest.MustLogin(t, s.Base, user, "demo")
			ws := apptest.DialSocket(t, s, tok, "")
			apptest.ReadFrame(t, ws)
			for _, f := range tc.frames {
				ws.SetWriteDeadline(time.Now().Add(apptest.WaitLimit))
				if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
					break // the server may close mid-burst
				}
			}
			frames, code := apptest.ReadUntilClose(t, ws)
			if code != tc.want {
				t.Errorf("close code: got %d (after %v), want %d", code, frames, tc.want)
			}
			for _, m := range frames {
				if m.Kind == protocol.Logout {
					t.Errorf("got a logout frame, want only a close: a bad frame is not a sign-out")
				}
			}
			// The session itself lives on.
			if code, body := apptest.SessionStatus(t, s.Base, tok); code != http.StatusOK {
				t.Errorf("GET /api/session after the close: got %d %s, want 200", code, body)
			}
		})
	}
	t.Run("binary", func(t *testing.T) {
		tok, _ := apptest.MustLogin(t, s.Base, "admin", "demo")
		ws := apptest.DialSocket(t, s, tok, "")
		apptest.ReadFrame(t, ws)
		ws.WriteMessage(websocket.BinaryMessage, []byte("sync"))
		if _, code := apptest.ReadUntilClose(t, ws); code != protocol.ClosePolicy {
			t.Errorf("close code: got %d, want %d", code, protocol.ClosePolicy)
		}
	})
	t.Run("max tabs", func(t *testing.T) {
		tok, _ := apptest.MustLogin(t, s.Base, "admin", "demo")
		a := apptest.DialSocket(t, s, tok, "")
		apptest.DialSocket(t, s, tok, "")
		if got := apptest.DialStatus(t, s, apptest.Bearer(tok)); got != http.StatusTooManyRequests {
			t.Errorf("third socket: got %d, want 429", got)
		}
		// Closing one makes room again.
		a.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		apptest.ReadUntilClose(t, a)
		var got int
		for deadline := time.Now().Add(apptest.WaitLimit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got = apptest.DialStatus(t, s, apptest.Bearer(tok)); got == http.StatusSwitchingProtocols {
				break
			}
		}
		if got != http.StatusSwitchingProtocols {
			t.Errorf("socket after one closed: got %d, want 101", got)
		}
	})
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
