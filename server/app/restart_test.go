package app

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"idleguard/server/internal/apptest"
	"idleguard/server/protocol"
	"idleguard/server/sessions"
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

// A session whose deadline passes while the program is stopped is ended by
// the next start: it comes back from the store already past its deadline,
// and the idle clock fires during start-up (it once raced with the wiring
// that gives the clock the sockets), ending it with reason idle, for good.
func TestRestartIntoPastDeadline(t *testing.T) {
	t.Parallel()
	// The first run must stop before the deadline, or it ends the session
	// itself and start-up has nothing to do. A stop slower than the
	// Expiration Time tries again with a longer one.
	for _, seconds := range []int{2, 4, 8} {
		if restartIntoPastDeadline(t, seconds) {
			return
		}
	}
	t.Fatal("every run took longer to stop than the session had left")
}

// restartIntoPastDeadline runs the scenario once with an Expiration Time of
// seconds, and reports false if the first run ended the session itself.
func restartIntoPastDeadline(t *testing.T, seconds int) bool {
	t.Helper()
	expiration := time.Duration(seconds) * time.Second
	s := apptest.Start(t, RunReady)
	apptest.SetExpiration(t, s.Base, seconds)
	tok, _ := apptest.MustLogin(t, s.Base, "cashier", "demo")
	sid := tokenSessionID(t, tok)
	ws := apptest.DialSocket(t, s, tok, "")
	apptest.ReadState(t, ws)
	// Activity just before the stop, so that the stop has all of an
	// Expiration Time to finish in.
	apptest.Send(t, ws, "activity ago=0")
	apptest.Send(t, ws, "sync")
	apptest.ReadState(t, ws) // frames are handled in order: the activity is in
	active := time.Now()     // the session's last activity is before this

	events := apptest.Watch(ws) // so that the socket answers the server's close
	stopping := time.Now()
	s.Stop(t)
	took := time.Since(stopping)
	closed := -1
	for e := range events {
		if e.End {
			closed = e.Code
		}
	}
	firstRun := s.Log.String()
	if strings.Contains(firstRun, signedOutLine(sid)) {
		t.Logf("the first run ended the session itself: it took %v to stop, with %v of the Expiration Time %v left",
			took.Round(time.Millisecond), expiration-stopping.Sub(active), expiration)
		return false
	}
	if closed != protocol.CloseGoingAway {
		t.Errorf("on shutdown: got close %d, want %d going away", closed, protocol.CloseGoingAway)
	}

	// Past the deadline, the program not running.
	time.Sleep(time.Until(active.Add(expiration + 100*time.Millisecond)))
	s.Start(t)
	// Not only refused: the idle clock fired for it during start-up.
	wantLogSoon(t, s, len(firstRun), signedOutLine(sid)+" reason=idle")
	apptest.WantEnded(t, s, tok, "idle")

	// The end is written, with its reason: the next run says so too.
	s.Restart(t)
	apptest.WantEnded(t, s, tok, "idle")
	return true
}

// tokenSessionID is the sid claim of a token (its payload, unverified).
func tokenSessionID(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q: want three parts", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		SessionID string `json:"sid"`
	}
	if err == nil {
		err = json.Unmarshal(payload, &claims)
	}
	if err != nil || claims.SessionID == "" {
		t.Fatalf("token payload %q: no sid (%v)", payload, err)
	}
	return claims.SessionID
}

// signedOutLine is how the log begins the record of the session's end.
func signedOutLine(sid string) string {
	return `msg="signed out" sid=` + sessions.ShortID(sid)
}

// wantLogSoon waits until the server's log, after its first from bytes,
// holds want.
func wantLogSoon(t *testing.T, s *apptest.Server, from int, want string) {
	t.Helper()
	for end := time.Now().Add(apptest.WaitLimit); !strings.Contains(s.Log.String()[from:], want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the server's log has no %q %v after the start", want, apptest.WaitLimit)
		}
	}
}
