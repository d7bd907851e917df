// Package web is idleguard's browser side as the server embeds it: the
// pages (login, POS, admin, 403), the stylesheet, the loader idleguard.js
// and, once `make wasm` has run, the guard module and Go's wasm_exec.js with
// their precompressed forms. It serves the static files itself and hands the
// pages, each with its Content-Security-Policy, to the server, which decides
// who may see them.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
)

//go:embed *.html *.css *.js build
var files embed.FS

// WasmPlaceholder is the module URL as written in idleguard.js; Assets
// replaces it with the content-hashed URL ("" when the module is not built).
const WasmPlaceholder = "__IDLEGUARD_WASM_URL__"

// Cache policies. The module's URL changes with its content, so it is cached
// for a year; the other files keep their URLs and are revalidated by ETag.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// Assets serves the embedded static files and holds the pages. It is
// immutable, so one value serves any number of requests.
type Assets struct {
	static  map[string]*asset // by URL path
	pages   map[string][]byte // by name: "login", "pos", "admin", "forbidden"
	csp     map[string]string // by page name: its Content-Security-Policy
	wasmURL string
}

// asset is one static file: its identity bytes and any precompressed
// variants, each a representation with its own strong ETag.
type asset struct {
	contentType  string
	cacheControl string
	identity     variant
	br, gzip     *variant
}

type variant struct {
	encoding string // "", "br" or "gzip"
	body     []byte
	etag     string
}

var loadAssets = sync.OnceValues(func() (*Assets, error) { return newAssets(files) })

// NewAssets reads the embedded files. The module and wasm_exec.js are
// served only if `make wasm` put them in build/ before the binary was built;
// a precompressed file that is not its original, compressed, is an error (a
// stale build). The result is shared: NewAssets does the work once.
func NewAssets() (*Assets, error) { return loadAssets() }

func newAssets(fsys fs.FS) (*Assets, error) {
	a := &Assets{static: map[string]*asset{}, pages: map[string][]byte{}, csp: map[string]string{}}
	for _, name := range []string{"login", "pos", "admin", "forbidden"} {
		b, err := fs.ReadFile(fsys, name+".html")
		if err != nil {
			return nil, err
		}
		a.pages[name] = b
		if a.csp[name], err = pagePolicy(b); err != nil {
			return nil, fmt.Errorf("web: %s.html: %v", name, err)
		}
	}

	wasm, err := loadAsset(fsys, "build/idleguard.wasm", "application/wasm", cacheImmutable)
	switch {
	case errors.Is(err, fs.ErrNotExist): // not built: no module to serve
	case err != nil:
		return nil, err
	default:
		sum := sha256.Sum256(wasm.identity.body)
		a.wasmURL = "/idleguard." + hex.EncodeToString(sum[:8]) + ".wasm"
		a.static[a.wasmURL] = wasm
	}

	exec, err := loadAsset(fsys, "build/wasm_exec.js", "text/javascript; charset=utf-8", cacheRevalidate)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		a.static["/wasm_exec.js"] = exec
	}

	loader, err := fs.ReadFile(fsys, "idleguard.js")
	if err != nil {
		return nil, err
	}
	if bytes.Count(loader, []byte(WasmPlaceholder)) != 1 {
		return nil, errors.New("web: idleguard.js must hold the module URL placeholder exactly once")
	}
	loader = bytes.Replace(loader, []byte(WasmPlaceholder), []byte(a.wasmURL), 1)
	a.static["/idleguard.js"] = newAsset(loader, "text/javascript; charset=utf-8", cacheRevalidate)

	for _, f := range []struct{ name, contentType string }{
		{"style.css", "text/css; charset=utf-8"},
		{"pages.js", "text/javascript; charset=utf-8"},
	} {
		body, err := fs.ReadFile(fsys, f.name)
		if err != nil {
			return nil, err
		}
		a.static["/"+f.name] = newAsset(body, f.contentType, cacheRevalidate)
	}
	return a, nil
}

func newAsset(body []byte, contentType, cacheControl string) *asset {
	return &asset{
		contentType:  contentType,
		cacheControl: cacheControl,
		identity:     variant{body: body, etag: etag(body, "")},
	}
}

// loadAsset reads name and, when present, name.br and name.gz, checking that
// each decompresses to name.
func loadAsset(fsys fs.FS, name, contentType, cacheControl string) (*asset, error) {
	body, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	a := newAsset(body, contentType, cacheControl)
	for _, v := range []struct {
		encoding, ext string
		slot          **variant
		reader        func(io.Reader) (io.Reader, error)
	}{
		{"br", ".br", &a.br, func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }},
		{"gzip", ".gz", &a.gzip, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
	} {
		packed, err := fs.ReadFile(fsys, name+v.ext)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		r, err := v.reader(bytes.NewReader(packed))
		if err == nil {
			var unpacked []byte
			if unpacked, err = io.ReadAll(r); err == nil && !bytes.Equal(unpacked, body) {
				err = errors.New("differs")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("web: %s%s is not %s compressed (%v): run make wasm", name, v.ext, name, err)
		}
		*v.slot = &variant{encoding: v.encoding, body: packed, etag: etag(body, v.encoding)}
	}
	return a, nil
}

// etag is a strong validator for one representation: the identity bytes'
// hash, marked with the content coding (a compressed variant is a different
// representation and needs a different strong ETag).
func etag(identity []byte, encoding string) string {
	sum := sha256.Sum256(identity)
	tag := `"` + hex.EncodeToString(sum[:16])
	if encoding != "" {
		tag += "-" + encoding
	}
	return tag + `"`
}

// WasmURL is the module's content-hashed URL, "" when it was not built.
func (a *Assets) WasmURL() string { return a.wasmURL }

// Page returns a page's HTML: name is "login", "pos", "admin" or
// "forbidden" (".html" may be added). The caller owns the returned bytes.
func (a *Assets) Page(name string) ([]byte, bool) {
	b, ok := a.pages[strings.TrimSuffix(name, ".html")]
	if !ok {
		return nil, false
	}
	return bytes.Clone(b), true
}

// ServeHTTP serves /idleguard.js, /wasm_exec.js, the module at WasmURL,
// /style.css and /pages.js, with strong ETags (304 on If-None-Match) and, for the module
// and wasm_exec.js, the precompressed variant the client accepts. Any other
// path is 404.
func (a *Assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	as, ok := a.static[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	v := &as.identity
	switch Negotiate(r.Header.Get("Accept-Encoding"), as.br != nil, as.gzip != nil) {
	case "br":
		v = as.br
	case "gzip":
		v = as.gzip
	}
	h := w.Header()
	h.Set("Content-Type", as.contentType)
	h.Set("Cache-Control", as.cacheControl)
	h.Set("ETag", v.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if as.br != nil || as.gzip != nil {
		h.Add("Vary", "Accept-Encoding")
	}
	if etagMatches(r.Header.Get("If-None-Match"), v.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if v.encoding != "" {
		h.Set("Content-Encoding", v.encoding)
	}
	h.Set("Content-Length", strconv.Itoa(len(v.body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(v.body)
}

// etagMatches applies If-None-Match (RFC 9110 13.1.2, weak comparison) to
// the current ETag.
func etagMatches(header, current string) bool {
	header = strings.TrimSpace(header)
	if header == "" {
		return false
	}
	if header == "*" {
		return true
	}
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == current {
			return true
		}
	}
	return false
}
