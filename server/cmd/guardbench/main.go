// Command guardbench measures the guard in headless Chromium for
// docs/BROWSER.md: the module's sizes as served, the time from
// DOMContentLoaded to the guard's socket being connected, and the script
// time the guard costs per input event against the same page without it.
// It asserts nothing; it prints what it measured.
//
//	make build && go run ./server/cmd/guardbench
//
// It starts bin/idleguard (-demo, a temporary data directory) on a free
// port, signs the demo cashier in through the login form, and drives /pos.
// The pages to compare with are copies of /pos served by a small server of
// its own: one with the script line removed (no guard), one with the loader
// but no module (its input listeners alone). They have no API behind them,
// so their "Signed in as" stays empty; nothing of that runs per input event.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"

	"idleguard/server/internal/headless"
)

// scriptLine is the guard's whole integration in a page.
const scriptLine = `<script src="/idleguard.js" defer></script>`

type config struct {
	serverBin string
	buildDir  string
	chromium  string
	events    int
	rounds    int
	loads     int
}

func main() {
	var c config
	flag.StringVar(&c.serverBin, "server-bin", "bin/idleguard", "the idleguard binary (make build)")
	flag.StringVar(&c.buildDir, "build", "web/build", "where make wasm put the module")
	flag.StringVar(&c.chromium, "chromium", "", "the browser (default: chromium on PATH)")
	flag.IntVar(&c.events, "events", 600, "mouse moves per burst")
	flag.IntVar(&c.rounds, "rounds", 5, "bursts per page (600 moves take about 10 s: one a frame)")
	flag.IntVar(&c.loads, "loads", 7, "page loads per connect-time measurement")
	flag.Parse()
	if err := run(context.Background(), c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "guardbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, out io.Writer) error {
	if c.chromium == "" {
		p, err := headless.Path()
		if err != nil {
			return err
		}
		c.chromium = p
	}
	if err := sizes(c.buildDir, out); err != nil {
		return err
	}

	base, stop, err := startServer(c.serverBin)
	if err != nil {
		return err
	}
	defer stop()
	plain, err := unguardedCopy(base)
	if err != nil {
		return err
	}
	defer plain.Close()

	ctx, cancel := newBrowser(ctx, c.chromium)
	defer cancel()
	if err := signIn(ctx, base); err != nil {
		return err
	}
	if err := connectTimes(ctx, base, c.loads, out); err != nil {
		return err
	}
	return scriptTimes(ctx, c, base, plain.URL, out)
}

// sizes prints the module's bytes as stored and served.
func sizes(dir string, out io.Writer) error {
	fmt.Fprintf(out, "module (%s)\n", dir)
	for _, name := range []string{"idleguard.wasm", "wasm_exec.js"} {
		var row []string
		for _, ext := range []string{"", ".gz", ".br"} {
			fi, err := os.Stat(filepath.Join(dir, name+ext))
			if err != nil {
				return fmt.Errorf("%v: run make wasm first", err)
			}
			row = append(row, fmt.Sprintf("%d B (%.1f KiB)", fi.Size(), float64(fi.Size())/1024))
		}
		fmt.Fprintf(out, "  %-15s raw %s, gzip %s, brotli %s\n", name, row[0], row[1], row[2])
	}
	return nil
}

// startServer runs the binary with the demo users on a free port and
// waits for /healthz.
func startServer(bin string) (base string, stop func(), err error) {
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("%v: run make build first", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	dir, err := os.MkdirTemp("", "guardbench-")
	if err != nil {
		return "", nil, err
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "-addr", addr, "-data", dir, "-demo", "-log-level", "warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	base = "http://" + addr
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, stop, nil
			}
		}
		if time.Now().After(end) {
			stop()
			return "", nil, fmt.Errorf("%s did not start:\n%s", bin, log.String())
		}
	}
}

// unguardedCopy serves, as the real server sends them to a signed-in
// cashier: /pos without the script line, /style.css, and /pos-loader: /pos
// with the loader but no module (its input listeners alone).
func unguardedCopy(base string) (*httptest.Server, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := client.Post(base+"/api/login", "application/json",
		strings.NewReader(`{"username":"cashier","password":"demo"}`))
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("login: %s", resp.Status)
	}
	get := func(path string) ([]byte, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	pos, err := get("/pos")
	if err != nil {
		return nil, err
	}
	if bytes.Count(pos, []byte(scriptLine)) != 1 {
		return nil, errors.New("/pos does not hold the script line once")
	}
	noGuard := bytes.Replace(pos, []byte(scriptLine), nil, 1)
	css, err := get("/style.css")
	if err != nil {
		return nil, err
	}
	loader, err := get("/idleguard.js")
	if err != nil {
		return nil, err
	}
	// The loader without a module URL records input and stops there.
	if n := len(moduleURL.FindAll(loader, -1)); n != 1 {
		return nil, fmt.Errorf("/idleguard.js sets moduleURL %d times, want once", n)
	}
	loader = moduleURL.ReplaceAll(loader, []byte("var moduleURL = '';"))
	files := map[string]struct {
		contentType string
		body        []byte
	}{
		"/pos":          {"text/html; charset=utf-8", noGuard},
		"/pos-loader":   {"text/html; charset=utf-8", pos},
		"/style.css":    {"text/css; charset=utf-8", css},
		"/idleguard.js": {"text/javascript; charset=utf-8", loader},
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.contentType)
		w.Write(f.body)
	})), nil
}

var moduleURL = regexp.MustCompile(`var moduleURL = '[^']*';`)

// newBrowser starts headless Chromium with the flags the tests use.
func newBrowser(ctx context.Context, exe string) (context.Context, context.CancelFunc) {
	dir, _ := os.MkdirTemp("", "guardbench-chromium-")
	alloc, cancelAlloc := headless.Allocator(ctx, exe, dir)
	ctx, cancel := chromedp.NewContext(alloc)
	return ctx, func() {
		cancel()
		cancelAlloc()
		os.RemoveAll(dir)
	}
}

func signIn(ctx context.Context, base string) error {
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.ID("username"), "cashier"),
		chromedp.SendKeys(chromedp.ID("password"), "demo"),
		chromedp.Click(chromedp.ID("signin")),
	)
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	_, err = waitFor[bool](ctx, `location.pathname === '/pos'`)
	return err
}

// waitFor evaluates expr every 20 ms until it is truthy and returns it;
// errors while the page navigates are part of the waiting.
func waitFor[T any](ctx context.Context, expr string) (T, error) {
	end := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		if err == nil && ok {
			return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		}
		if time.Now().After(end) {
			var zero T
			return zero, fmt.Errorf("waited 20s for %s (%v)", expr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// timing is installed in every new document: when DOMContentLoaded fired,
// and when the guard first said connected, then first had the server's
// remaining time, all on the page's clock.
const timing = `window.__bench = {};
document.addEventListener('DOMContentLoaded', () => { __bench.dcl = performance.now(); });
addEventListener('idleguard:state', e => {
	const now = performance.now();
	if (e.detail.connected && __bench.open === undefined) __bench.open = now;
	if (e.detail.connected && e.detail.remaining_ms !== null && __bench.state === undefined) __bench.state = now;
});`

type loadTiming struct {
	DCL   float64 `json:"dcl"`
	Open  float64 `json:"open"`
	State float64 `json:"state"`
}

// connectTimes loads /pos repeatedly, with the HTTP cache off (the module is
// fetched each time) and on (warm), and prints DOMContentLoaded to the
// guard's socket open and to its first remaining time from the server.
func connectTimes(ctx context.Context, base string, loads int, out io.Writer) error {
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: timing}); err != nil {
		return err
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		return err
	}
	fmt.Fprintf(out, "DOMContentLoaded -> guard connected on %s/pos, median of %d loads each (min..max)\n", base, loads)
	type series struct{ open, state []float64 }
	var cold, warm series
	// Cold and warm loads alternate, so that neither gets the quieter
	// moments of the machine.
	for i := range 2 * loads {
		off := i%2 == 0
		if _, err := chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: off}); err != nil {
			return err
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/pos")); err != nil {
			return err
		}
		t, err := waitFor[loadTiming](ctx, `__bench.state !== undefined && __bench`)
		if err != nil {
			return err
		}
		s := &warm
		if off {
			s = &cold
		}
		s.open = append(s.open, t.Open-t.DCL)
		s.state = append(s.state, t.State-t.DCL)
	}
	fmt.Fprintf(out, "  cache off   socket open %s ms, first remaining time %s ms\n", stats(cold.open), stats(cold.state))
	fmt.Fprintf(out, "  warm cache  socket open %s ms, first remaining time %s ms\n", stats(warm.open), stats(warm.state))
	_, err := chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: false})
	return err
}

// scriptTimes prints the script time per mouse move on the guarded page,
// on the copy with the loader's listeners only, and on the copy without
// the guard. Each page has its own tab (and window); the bursts take turns
// between them, so that a busy moment of the machine hits all three alike.
func scriptTimes(ctx context.Context, c config, base, copyBase string, out io.Writer) error {
	pages := []struct {
		label, url, ready string
		tab               context.Context
		perEvent          []float64
	}{
		{label: "guarded (the one script line)", url: base + "/pos", ready: `__idleguard.state && __idleguard.state.connected`},
		{label: "loader listeners only, no module", url: copyBase + "/pos-loader", ready: `__idleguard.error`},
		{label: "no guard (script line removed)", url: copyBase + "/pos", ready: `document.readyState === 'complete'`},
	}
	for i := range pages {
		p := &pages[i]
		tab, cancel := chromedp.NewContext(ctx) // a tab in a window of its own
		defer cancel()
		p.tab = tab
		if err := chromedp.Do(tab, chromedp.Navigate(p.url)); err != nil {
			return err
		}
		if _, err := waitFor[bool](tab, "!!("+p.ready+")"); err != nil {
			return err
		}
		if _, err := chromedp.Call(tab, performance.Enable, performance.EnableParams{}); err != nil {
			return err
		}
	}
	time.Sleep(time.Second) // let the pages settle
	var burst []float64
	for range c.rounds {
		for i := range pages {
			p := &pages[i]
			if _, err := chromedp.Call(p.tab, page.BringToFront, cdp.Empty{}); err != nil {
				return err
			}
			e, d, err := measureBurst(p.tab, c.events)
			if err != nil {
				return err
			}
			p.perEvent = append(p.perEvent, e*1e6/float64(c.events))
			burst = append(burst, d.Seconds())
		}
	}
	fmt.Fprintf(out, "script time per mousemove: CDP Performance.getMetrics ScriptDuration around %d Input.dispatchMouseEvent mouseMoved (%s s a burst), median of %d bursts (min..max)\n",
		c.events, stats(burst), c.rounds)
	for _, p := range pages {
		fmt.Fprintf(out, "  %-34s %s us/event   %s\n", p.label, stats(p.perEvent), p.url)
	}
	return nil
}

// measureBurst sends n mouse moves and returns the script time they cost (s)
// and how long the burst took. The script time is all the page ran
// meanwhile: for the guarded page that includes the module's own timer
// (four ticks a second), not only the input listeners.
func measureBurst(ctx context.Context, n int) (float64, time.Duration, error) {
	before, err := scriptDuration(ctx)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	for i := range n {
		// A slow figure eight over the product grid and the cart.
		a := float64(i) / 40
		x := 640 + 500*math.Sin(a)
		y := 380 + 250*math.Sin(2*a)
		if _, err := chromedp.Call(ctx, input.DispatchMouseEvent, input.DispatchMouseEventParams{
			Type: input.DispatchMouseEventTypeMouseMoved, X: x, Y: y,
		}); err != nil {
			return 0, 0, err
		}
	}
	took := time.Since(start)
	after, err := scriptDuration(ctx)
	return after - before, took, err
}

func scriptDuration(ctx context.Context) (float64, error) {
	res, err := chromedp.Call(ctx, performance.GetMetrics, cdp.Empty{})
	if err != nil {
		return 0, err
	}
	for _, m := range res.Metrics {
		if m.Name == "ScriptDuration" {
			return m.Value, nil
		}
	}
	return 0, errors.New("no ScriptDuration metric")
}

// stats is "median (min..max)" with one decimal.
func stats(v []float64) string {
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("%.1f (%.1f..%.1f)", med, s[0], s[len(s)-1])
}
