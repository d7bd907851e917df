//go:build js && wasm

package main

import (
	"errors"
	"syscall/js"

	"idleguard/server/protocol"
)

// browser is the Guard's Port in a real page. Every Go entry point is a JS
// callback (timer, socket, fetch, DOM event) that runs to completion on the
// page's one thread, so the Guard needs no locks; none of them blocks.
type browser struct {
	guard *Guard
	done  chan struct{} // closed by stop

	window, document, location js.Value
	glob                       js.Value // globalThis.__idleguard, made by the loader
	input                      js.Value // the loader's input sample: {last: event.timeStamp}
	now                        js.Value // performance.now, bound
	fetch, webSocket, event    js.Value // constructors and functions called often

	loginURL, socketURL string

	ws    js.Value // the current socket, or null
	frame []byte   // reused for outgoing frames

	onOpen, onMessage, onClose js.Func // shared by every socket in turn
	onTick, onResume, ignore   js.Func
	timer                      js.Value // the pending setTimeout for onTick, or null
	timerDue                   int64
	stopped                    bool
	dialog                     warningDialog
}

func newBrowser() (*browser, error) {
	g := js.Global()
	glob := g.Get("__idleguard")
	if glob.Type() != js.TypeObject {
		return nil, errors.New("load this module through /idleguard.js")
	}
	cfg := glob.Get("config")
	b := &browser{
		done:      make(chan struct{}),
		window:    g,
		document:  g.Get("document"),
		location:  g.Get("location"),
		glob:      glob,
		input:     glob.Get("input"),
		fetch:     g.Get("fetch"),
		webSocket: g.Get("WebSocket"),
		event:     g.Get("CustomEvent"),
		loginURL:  stringOr(cfg.Get("loginURL"), "/login"),
		socketURL: stringOr(cfg.Get("socketURL"), ""),
		ws:        js.Null(),
		timer:     js.Null(),
	}
	if b.socketURL == "" || b.input.Type() != js.TypeObject {
		return nil, errors.New("the loader gave no socket URL or input sample")
	}
	if b.webSocket.Type() != js.TypeFunction {
		// Dial's catch stops only exceptions the constructor throws.
		return nil, errors.New("this browser has no WebSocket")
	}
	perf := g.Get("performance")
	b.now = perf.Get("now").Call("bind", perf)
	b.dialog.document = b.document
	math := g.Get("Math")
	b.guard = NewGuard(b, Backoff{Base: 500, Cap: 10000, Rand: func() float64 {
		return math.Call("random").Float()
	}})
	return b, nil
}

func (b *browser) nowMs() int64 { return int64(b.now.Invoke().Float()) }

func (b *browser) inputMs() int64 {
	v := b.input.Get("last")
	if v.Type() != js.TypeNumber {
		return 0
	}
	return int64(v.Float())
}

func (b *browser) start() {
	b.onOpen = js.FuncOf(func(this js.Value, _ []js.Value) any {
		if this.Equal(b.ws) {
			b.guard.Opened(b.nowMs())
			b.schedule()
		}
		return nil
	})
	b.onMessage = js.FuncOf(func(this js.Value, args []js.Value) any {
		if this.Equal(b.ws) && len(args) > 0 {
			if data := args[0].Get("data"); data.Type() == js.TypeString {
				b.guard.Received(b.nowMs(), []byte(data.String()))
				b.schedule()
			}
		}
		return nil
	})
	b.onClose = js.FuncOf(func(this js.Value, args []js.Value) any {
		if !this.Equal(b.ws) || len(args) == 0 {
			return nil
		}
		b.detach()
		b.guard.Closed(b.nowMs(), args[0].Get("code").Int())
		b.schedule()
		return nil
	})
	b.onTick = js.FuncOf(func(js.Value, []js.Value) any {
		b.timer = js.Null()
		b.guard.Tick(b.nowMs(), b.inputMs())
		b.schedule()
		return nil
	})
	b.onResume = js.FuncOf(func(js.Value, []js.Value) any {
		if b.document.Get("visibilityState").String() == "visible" {
			b.guard.Resume(b.nowMs())
			b.schedule()
		}
		return nil
	})
	b.ignore = js.FuncOf(func(js.Value, []js.Value) any { return nil })
	b.dialog.init(
		func() { b.guard.Stay(b.nowMs(), b.inputMs()); b.schedule() },
		func() { b.guard.SignOutNow(b.nowMs()); b.schedule() },
	)
	b.document.Call("addEventListener", "visibilitychange", b.onResume)
	b.window.Call("addEventListener", "online", b.onResume)
	b.glob.Set("started", true)
	b.guard.Start(b.nowMs())
	b.schedule()
}

// schedule sets the timer for the guard's next tick, after every call into
// the guard: one timer, moved earlier when the guard needs it sooner.
func (b *browser) schedule() {
	if b.stopped {
		return
	}
	now := b.nowMs()
	d := b.guard.NextTick(now)
	if d < 0 {
		return
	}
	if !b.timer.IsNull() {
		if b.timerDue <= now+d {
			return
		}
		b.window.Call("clearTimeout", b.timer)
	}
	b.timer, b.timerDue = b.window.Call("setTimeout", b.onTick, d), now+d
}

// stop undoes start. It runs inside a callback, after which nothing of the
// module is called again.
func (b *browser) stop() {
	b.stopped = true
	if !b.timer.IsNull() {
		b.window.Call("clearTimeout", b.timer)
	}
	b.document.Call("removeEventListener", "visibilitychange", b.onResume)
	b.window.Call("removeEventListener", "online", b.onResume)
	b.Hangup()
	b.dialog.release()
	for _, f := range []js.Func{b.onOpen, b.onMessage, b.onClose, b.onTick, b.onResume, b.ignore} {
		f.Release()
	}
	close(b.done)
}

// Dial implements Port.
func (b *browser) Dial() bool {
	var ws js.Value
	if err := catch(func() { ws = b.webSocket.New(b.socketURL) }); err != nil {
		b.warn("cannot open the socket: " + err.Error())
		return false
	}
	ws.Set("onopen", b.onOpen)
	ws.Set("onmessage", b.onMessage)
	ws.Set("onclose", b.onClose)
	b.ws = ws
	return true
}

// detach forgets the current socket, so that its late events are ignored.
func (b *browser) detach() js.Value {
	ws := b.ws
	if !ws.IsNull() {
		ws.Set("onopen", js.Null())
		ws.Set("onmessage", js.Null())
		ws.Set("onclose", js.Null())
		b.ws = js.Null()
	}
	return ws
}

// Hangup implements Port.
func (b *browser) Hangup() {
	if ws := b.detach(); !ws.IsNull() {
		_ = catch(func() { ws.Call("close", 1000) })
	}
}

// Send implements Port.
func (b *browser) Send(m protocol.Message) {
	if b.ws.IsNull() {
		return
	}
	b.frame = protocol.Append(b.frame[:0], m)
	frame := string(b.frame)
	_ = catch(func() { b.ws.Call("send", frame) })
}

// RenewToken implements Port: the socket cannot set an HttpOnly cookie, so
// the renewed token goes to POST /api/token in a header (never in a URL).
// Like every state-changing request it is JSON: the server refuses a POST
// of any other type, which a cross-site form could send.
func (b *browser) RenewToken(token string) {
	p := b.fetch.Invoke("/api/token", map[string]any{
		"method": "POST",
		"headers": map[string]any{
			"Authorization": "Bearer " + token,
			"Content-Type":  "application/json",
		},
		"body":        "{}",
		"credentials": "same-origin",
	})
	p.Call("catch", b.ignore)
}

// CheckSession implements Port.
func (b *browser) CheckSession() {
	p := b.fetch.Invoke("/api/session", map[string]any{
		"credentials": "same-origin",
		"cache":       "no-store",
		"headers":     map[string]any{"Accept": "application/json"},
	})
	then(p, func(resp js.Value) {
		status := resp.Get("status").Int()
		if status != 200 && status != 401 {
			b.sessionChecked(SessionInfo{Status: status})
			return
		}
		then(resp.Call("json"), func(body js.Value) {
			b.sessionChecked(sessionInfo(status, body))
		}, func(js.Value) {
			b.sessionChecked(SessionInfo{Status: status})
		})
	}, func(js.Value) {
		b.sessionChecked(SessionInfo{})
	})
}

func (b *browser) sessionChecked(s SessionInfo) {
	b.guard.SessionChecked(b.nowMs(), s)
	b.schedule()
}

// sessionInfo reads GET /api/session's JSON, parsed by the browser.
func sessionInfo(status int, body js.Value) SessionInfo {
	s := SessionInfo{Status: status}
	if body.Type() != js.TypeObject {
		return s
	}
	if status == 401 {
		s.Reason = stringOr(body.Get("reason"), "")
		if e := body.Get("error"); s.Reason == "" && e.Type() == js.TypeObject {
			s.Reason = stringOr(e.Get("reason"), "")
		}
		return s
	}
	s.RemainingMs, s.HasRemaining = number(body.Get("remaining_ms"))
	s.ExpirationS, _ = number(body.Get("expiration_seconds"))
	if w := body.Get("warning_seconds"); w.Type() == js.TypeNumber { // may be fractional
		s.WarnMs = int64(w.Float() * 1000)
	}
	return s
}

// Logout implements Port. keepalive lets the request finish even if the
// page leaves first. The body is JSON, as RenewToken's.
func (b *browser) Logout() {
	p := b.fetch.Invoke("/api/logout", map[string]any{
		"method":      "POST",
		"headers":     map[string]any{"Content-Type": "application/json"},
		"body":        "{}",
		"credentials": "same-origin",
		"keepalive":   true,
	})
	done := func(js.Value) { b.guard.LogoutDone() }
	then(p, done, done)
}

// ShowWarning implements Port.
func (b *browser) ShowWarning(remainingMs int64) { b.dialog.show(remainingMs) }

// HideWarning implements Port.
func (b *browser) HideWarning() { b.dialog.hide() }

// Announce implements Port: idleguard:state, also kept as
// __idleguard.state for pages (and tests) that look rather than listen.
func (b *browser) Announce(s Status) {
	var remaining any // null until the server has told a remaining time
	if s.Known {
		remaining = s.RemainingMs
	}
	detail := js.ValueOf(map[string]any{
		"remaining_ms":       remaining,
		"expiration_seconds": s.ExpirationS,
		"warning_ms":         s.WarnMs,
		"connected":          s.Connected,
	})
	b.glob.Set("state", detail)
	if s.Connected && b.glob.Get("connectedAt").IsNull() {
		b.glob.Set("connectedAt", b.now.Invoke()) // first connection, for measurements
	}
	b.dispatch("idleguard:state", detail)
}

// AnnounceWarning implements Port.
func (b *browser) AnnounceWarning(remainingMs int64) {
	b.dispatch("idleguard:warning", js.ValueOf(map[string]any{"remaining_ms": remainingMs}))
}

// SignOut implements Port. idleguard:signout is dispatched synchronously, so
// the page's listeners (the POS saves its cart) run before it leaves.
func (b *browser) SignOut(reason protocol.Reason, expirationS int64) {
	b.dialog.hide()
	b.Hangup()
	var exp any
	if expirationS > 0 {
		exp = expirationS
	}
	detail := js.ValueOf(map[string]any{"reason": reason.String(), "expiration_seconds": exp})
	b.glob.Set("signedOut", detail)
	b.dispatch("idleguard:signout", detail)
	next := b.location.Get("pathname").String() + b.location.Get("search").String()
	url := SignOutURL(b.loginURL, reason, expirationS, next)
	if err := catch(func() { b.location.Call("replace", url) }); err != nil {
		b.warn("cannot leave for the login page: " + err.Error())
	}
	b.stop()
}

func (b *browser) dispatch(name string, detail js.Value) {
	ev := b.event.New(name, map[string]any{"detail": detail})
	b.window.Call("dispatchEvent", ev)
}

func (b *browser) warn(msg string) {
	b.window.Get("console").Call("warn", "idleguard: "+msg)
}

// then attaches ok and fail to promise p; both functions are released as
// soon as either runs.
func then(p js.Value, ok, fail func(js.Value)) {
	var onOK, onFail js.Func
	settle := func(f func(js.Value), args []js.Value) any {
		onOK.Release()
		onFail.Release()
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		f(v)
		return nil
	}
	onOK = js.FuncOf(func(_ js.Value, args []js.Value) any { return settle(ok, args) })
	onFail = js.FuncOf(func(_ js.Value, args []js.Value) any { return settle(fail, args) })
	p.Call("then", onOK, onFail)
}

func stringOr(v js.Value, fallback string) string {
	if v.Type() == js.TypeString && v.String() != "" {
		return v.String()
	}
	return fallback
}

func number(v js.Value) (int64, bool) {
	if v.Type() != js.TypeNumber {
		return 0, false
	}
	return int64(v.Float()), true
}
