package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"
)

func mustAssets(tb testing.TB) *Assets {
	tb.Helper()
	a, err := NewAssets()
	if err != nil {
		tb.Fatalf("NewAssets: %v", err)
	}
	return a
}

// get serves one request through the real handler.
func get(tb testing.TB, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	tb.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func wantHeader(t *testing.T, w *httptest.ResponseRecorder, key, want string) {
	t.Helper()
	if got := w.Header().Get(key); got != want {
		t.Errorf("%s: got %q, want %q", key, got, want)
	}
}

var strongETag = regexp.MustCompile(`^"[0-9a-f]{32}(-br|-gzip)?"$`)

func TestPages(t *testing.T) {
	a := mustAssets(t)
	for name, want := range map[string]string{
		"login":      `id="signin"`,
		"login.html": `id="login-reason"`,
		"pos":        `id="cart-total"`,
		"admin":      `id="expiration-seconds"`,
		"forbidden":  "You need the Developer → View permission to open Developer Configuration.",
	} {
		b, ok := a.Page(name)
		if !ok {
			t.Errorf("Page(%q): missing", name)
			continue
		}
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("Page(%q) does not contain %q", name, want)
		}
	}
	for _, name := range []string{"", "index", "../web.go", "style.css"} {
		if _, ok := a.Page(name); ok {
			t.Errorf("Page(%q): got a page, want none", name)
		}
	}
	b, _ := a.Page("pos")
	b[0] = 'X'
	if again, _ := a.Page("pos"); again[0] == 'X' {
		t.Error("Page hands out the shared bytes")
	}
}

// Every page names the domain it is served for, in its title and its
// header: the server replaces each {{domain}} with the name. Never inside a
// script, whose hash the page's policy pins to the embedded text.
func TestPagesNameTheDomain(t *testing.T) {
	a := mustAssets(t)
	title := regexp.MustCompile(`<title>[^<]*\{\{domain\}\}[^<]*</title>`)
	header := regexp.MustCompile(`<span class="domain"[^>]* data-domain[^>]*>\{\{domain\}\}</span>`)
	script := regexp.MustCompile(`(?is)<script[^>]*>.*?</script\s*>`)
	for _, name := range []string{"login", "pos", "admin", "forbidden"} {
		b, _ := a.Page(name)
		if !title.Match(b) {
			t.Errorf("%s: the <title> does not name {{domain}}", name)
		}
		if !header.Match(b) {
			t.Errorf("%s: no <span class=\"domain\" data-domain>{{domain}}</span> in the header", name)
		}
		for _, s := range script.FindAll(b, -1) {
			if bytes.Contains(s, []byte("{{domain}}")) {
				t.Errorf("%s: {{domain}} inside a script: its CSP hash would not match the page served", name)
			}
		}
	}
}

// Every guarded page carries the one line; the login page does not.
func TestGuardedPages(t *testing.T) {
	a := mustAssets(t)
	const line = `<script src="/idleguard.js" defer></script>`
	for name, guarded := range map[string]bool{"login": false, "pos": true, "admin": true, "forbidden": true} {
		b, _ := a.Page(name)
		if got := bytes.Contains(b, []byte(line)); got != guarded {
			t.Errorf("%s: guarded = %v, want %v", name, got, guarded)
		}
	}
}

func TestLoader(t *testing.T) {
	a := mustAssets(t)
	w := get(t, a, "GET", "/idleguard.js")
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	wantHeader(t, w, "Content-Type", "text/javascript; charset=utf-8")
	wantHeader(t, w, "Cache-Control", "no-cache")
	body := w.Body.String()
	if strings.Contains(body, WasmPlaceholder) {
		t.Error("the placeholder was not replaced")
	}
	if want := "var moduleURL = '" + a.WasmURL() + "';"; !strings.Contains(body, want) {
		t.Errorf("the loader does not contain %q", want)
	}
	etag := w.Header().Get("ETag")
	if !strongETag.MatchString(etag) {
		t.Fatalf("ETag %q is not a strong content hash", etag)
	}

	t.Run("conditional", func(t *testing.T) {
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			w := get(t, a, "GET", "/idleguard.js", "If-None-Match", inm)
			if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
				t.Errorf("If-None-Match %s: status %d with %d bytes, want 304 and none", inm, w.Code, w.Body.Len())
			}
			wantHeader(t, w, "ETag", etag)
			wantHeader(t, w, "Cache-Control", "no-cache")
		}
		if w := get(t, a, "GET", "/idleguard.js", "If-None-Match", `"stale"`); w.Code != 200 {
			t.Errorf("stale ETag: status %d, want 200", w.Code)
		}
	})
	t.Run("head", func(t *testing.T) {
		w := get(t, a, "HEAD", "/idleguard.js")
		if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("HEAD: status %d, %d bytes, length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
		}
	})
	t.Run("method", func(t *testing.T) {
		w := get(t, a, "POST", "/idleguard.js")
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST: status %d, want 405", w.Code)
		}
		wantHeader(t, w, "Allow", "GET, HEAD")
	})
}

func TestStylesheet(t *testing.T) {
	a := mustAssets(t)
	w := get(t, a, "GET", "/style.css")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "#idleguard-warning") {
		t.Fatalf("status %d; the stylesheet must style the warning dialog", w.Code)
	}
	wantHeader(t, w, "Content-Type", "text/css; charset=utf-8")
	wantHeader(t, w, "Vary", "")
}

func TestNotFound(t *testing.T) {
	a := mustAssets(t)
	for _, path := range []string{"/", "/login", "/pos.html", "/build/idleguard.wasm", "/idleguard.wasm",
		"/idleguard.0123456789abcdef.wasm", "/build/README.txt", "/web.go", "/style.css/"} {
		if w := get(t, a, "GET", path); w.Code != 404 {
			t.Errorf("GET %s: status %d, want 404", path, w.Code)
		}
	}
}

func TestModule(t *testing.T) {
	a := mustAssets(t)
	if a.WasmURL() == "" {
		t.Skip("web/build/idleguard.wasm is not built: run make wasm (make test does) to test serving the module")
	}
	if !regexp.MustCompile(`^/idleguard\.[0-9a-f]{16}\.wasm$`).MatchString(a.WasmURL()) {
		t.Fatalf("WasmURL %q is not /idleguard.<16 hex>.wasm", a.WasmURL())
	}
	raw, err := fs.ReadFile(files, "build/idleguard.wasm")
	if err != nil {
		t.Fatal(err)
	}
	testPrecompressed(t, a, a.WasmURL(), raw, "application/wasm", "public, max-age=31536000, immutable")
}

func TestWasmExec(t *testing.T) {
	a := mustAssets(t)
	raw, err := fs.ReadFile(files, "build/wasm_exec.js")
	if err != nil {
		t.Skip("web/build/wasm_exec.js is not there: run make wasm (make test does)")
	}
	testPrecompressed(t, a, "/wasm_exec.js", raw, "text/javascript; charset=utf-8", "no-cache")
}

func testPrecompressed(t *testing.T, a *Assets, path string, raw []byte, contentType, cache string) {
	etags := map[string]string{}
	for _, c := range []struct{ accept, encoding string }{
		{"", ""},
		{"gzip, deflate, br, zstd", "br"},
		{"br;q=0, gzip", "gzip"},
		{"gzip;q=0.5, br;q=0.4", "gzip"},
		{"identity", ""},
		{"*", "br"},
		{"*;q=0", ""},
	} {
		t.Run("accept "+c.accept, func(t *testing.T) {
			w := get(t, a, "GET", path, "Accept-Encoding", c.accept)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			wantHeader(t, w, "Content-Type", contentType)
			wantHeader(t, w, "Cache-Control", cache)
			wantHeader(t, w, "Vary", "Accept-Encoding")
			wantHeader(t, w, "Content-Encoding", c.encoding)
			wantHeader(t, w, "Content-Length", strconv.Itoa(w.Body.Len()))
			etag := w.Header().Get("ETag")
			if !strongETag.MatchString(etag) {
				t.Errorf("ETag %q is not strong", etag)
			}
			if prev, ok := etags[c.encoding]; ok && prev != etag {
				t.Errorf("ETag for %q changed: %q then %q", c.encoding, prev, etag)
			}
			etags[c.encoding] = etag
			if got := decode(t, c.encoding, w.Body.Bytes()); !bytes.Equal(got, raw) {
				t.Errorf("body (%d bytes, %q) does not decode to the file (%d bytes)", w.Body.Len(), c.encoding, len(raw))
			}
			if w := get(t, a, "GET", path, "Accept-Encoding", c.accept, "If-None-Match", etag); w.Code != 304 {
				t.Errorf("If-None-Match: status %d, want 304", w.Code)
			} else {
				wantHeader(t, w, "Vary", "Accept-Encoding")
				wantHeader(t, w, "Cache-Control", cache)
			}
		})
	}
	if etags[""] == etags["br"] || etags["br"] == etags["gzip"] {
		t.Errorf("variants share an ETag: %v", etags)
	}
}

func decode(t *testing.T, encoding string, b []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	switch encoding {
	case "br":
		r = brotli.NewReader(r)
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", encoding, err)
	}
	return out
}

func gzipped(b []byte) []byte {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(b)
	zw.Close()
	return gz.Bytes()
}

// synthetic is a minimal web/ tree for newAssets.
func synthetic(extra fstest.MapFS) fstest.MapFS {
	m := fstest.MapFS{
		"login.html": {Data: []byte("login")}, "pos.html": {Data: []byte("pos")},
		"admin.html": {Data: []byte("admin")}, "forbidden.html": {Data: []byte("403")},
		"style.css":    {Data: []byte("body{}")},
		"pages.js":     {Data: []byte("var x;")},
		"idleguard.js": {Data: []byte("var moduleURL = '" + WasmPlaceholder + "';")},
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestUnbuilt(t *testing.T) {
	a, err := newAssets(synthetic(nil))
	if err != nil {
		t.Fatal(err)
	}
	if a.WasmURL() != "" {
		t.Errorf("WasmURL %q without a module", a.WasmURL())
	}
	if w := get(t, a, "GET", "/idleguard.js"); w.Body.String() != "var moduleURL = '';" {
		t.Errorf("loader %q: the module URL must be empty", w.Body.String())
	}
	if w := get(t, a, "GET", "/wasm_exec.js"); w.Code != 404 {
		t.Errorf("wasm_exec.js: status %d, want 404", w.Code)
	}
}

func TestBuiltSynthetic(t *testing.T) {
	module := []byte("\x00asm\x01\x00\x00\x00 a module")
	a, err := newAssets(synthetic(fstest.MapFS{
		"build/idleguard.wasm":    {Data: module},
		"build/idleguard.wasm.gz": {Data: gzipped(module)},
	}))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(module)
	if want := "/idleguard." + hex.EncodeToString(sum[:8]) + ".wasm"; a.WasmURL() != want {
		t.Errorf("WasmURL %q, want %q", a.WasmURL(), want)
	}
	w := get(t, a, "GET", a.WasmURL(), "Accept-Encoding", "br, gzip")
	wantHeader(t, w, "Content-Encoding", "gzip") // no .br: the next best
	if !bytes.Equal(decode(t, "gzip", w.Body.Bytes()), module) {
		t.Error("gzip body is not the module")
	}
	if w := get(t, a, "GET", "/idleguard.js"); !strings.Contains(w.Body.String(), a.WasmURL()) {
		t.Errorf("loader %q lacks the module URL", w.Body.String())
	}
}

func TestStalePrecompressedIsAnError(t *testing.T) {
	for name, extra := range map[string]fstest.MapFS{
		"stale gz": {"build/idleguard.wasm": {Data: []byte("module")}, "build/idleguard.wasm.gz": {Data: gzipped([]byte("an older module"))}},
		"junk br":  {"build/idleguard.wasm": {Data: []byte("module")}, "build/idleguard.wasm.br": {Data: []byte("junk")}},
	} {
		if _, err := newAssets(synthetic(extra)); err == nil || !strings.Contains(err.Error(), "make wasm") {
			t.Errorf("%s: err = %v, want one that says to run make wasm", name, err)
		}
	}
}

func TestPlaceholderExactlyOnce(t *testing.T) {
	for _, loader := range []string{"no placeholder", WasmPlaceholder + WasmPlaceholder} {
		if _, err := newAssets(synthetic(fstest.MapFS{"idleguard.js": {Data: []byte(loader)}})); err == nil {
			t.Errorf("loader %q: no error", loader)
		}
	}
}

func TestETagMatches(t *testing.T) {
	const tag = `"abc"`
	for header, want := range map[string]bool{
		"": false, `"abc"`: true, `W/"abc"`: true, ` "x" , "abc" `: true, "*": true,
		`"ab"`: false, `abc`: false, `"abc-br"`: false,
	} {
		if got := etagMatches(header, tag); got != want {
			t.Errorf("etagMatches(%q) = %v, want %v", header, got, want)
		}
	}
}
