package app

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"idleguard/server/internal/apptest"
	"idleguard/server/protocol"
)

// A restart keeps users, the setting and sessions with their last activity;
// open sockets are told "going away", not signed out, and a reconnecting
// page gets the remaining time it had.
func TestRestartKeepsSessions(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, RunReady)
	const expiration = 30 * time.Second
	admin := apptest.SetExpiration(t, s.Base, 30)
	tok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	ws := apptest.DialSocket(t, s, tok, "")
	apptest.ReadFrame(t, ws)

	// Activity well after sign-in, so a restart that forgot it would show.
	time.Sleep(3 * time.Second)
	sent := time.Now()
	apptest.Send(t, ws, "activity ago=0")
	apptest.Send(t, ws, "sync")
	// Frames are handled in order: a state now means the activity is in.
	if m := apptest.ReadFrame(t, ws); m.Kind != protocol.State {
		t.Fatalf("after sync: got %+v, want state", m)
	}

	events := apptest.Watch(ws)
	// Users must come from the store now, not from -demo.
	s.Args = append(s.Args, "-demo=false")
	s.Stop(t)
	for e := range events {
		if !e.End {
			t.Errorf("on shutdown: got frame %q, want only a close", e.Raw)
			continue
		}
		if e.Code != protocol.CloseGoingAway {
			t.Errorf("on shutdown: got close %d (%s), want %d going away", e.Code, e.Raw, protocol.CloseGoingAway)
		}
	}
	s.Start(t)

	code, body := apptest.SessionStatus(t, s.Base, tok)
	if code != http.StatusOK {
		t.Fatalf("old token after restart: got %d %s, want 200", code, body)
	}
	var sess struct {
		User struct {
			Name string `json:"name"`
		} `json:"user"`
		RemainingMs       int64 `json:"remaining_ms"`
		ExpirationSeconds int64 `json:"expiration_seconds"`
	}
	if err := json.Unmarshal(body, &sess); err != nil || sess.User.Name != "cashier" || sess.ExpirationSeconds != 30 {
		t.Errorf("GET /api/session after restart: got %s, want cashier with expiration 30", body)
	}
	if got := apptest.GetSettings(t, s.Base, admin); got.ExpirationSeconds != 30 || got.UpdatedBy != "admin" {
		t.Errorf("settings after restart: got %+v, want 30 by admin", got)
	}
	if c := apptest.GetChanges(t, s.Base, admin); len(c) != 1 || c[0].New != 30 {
		t.Errorf("changes after restart: got %+v, want the one change to 30", c)
	}
	apptest.MustLogin(t, s.Base, "viewer", "demo")

	ws = apptest.DialSocket(t, s, tok, "")
	m := apptest.ReadFrame(t, ws)
	elapsed := time.Since(sent)
	low := (expiration - elapsed - 1500*time.Millisecond).Milliseconds()
	if m.Kind != protocol.State || m.ExpirationS != 30 || m.RemainingMs > expiration.Milliseconds() || m.RemainingMs <= low {
		t.Errorf("state after restart: got %+v, want expiration=30 and %d < remaining <= %d (%v since the activity)",
			m, low, expiration.Milliseconds(), elapsed)
	}
}
