package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// CSP returns the Content-Security-Policy for a page named as for Page. It
// allows the page's own inline scripts by hash (computed from the embedded
// page, so an edited script cannot be served under a stale policy), scripts,
// styles and connections (fetch, the socket) from this origin only, and
// WebAssembly compilation only on the guarded pages. An unknown name gets a
// policy that allows nothing.
func (a *Assets) CSP(name string) string {
	if p, ok := a.csp[strings.TrimSuffix(name, ".html")]; ok {
		return p
	}
	return "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}

// guardLine is the one line that loads the guard into a page.
const guardLine = `<script src="/idleguard.js" defer></script>`

// pagePolicy builds a page's CSP. A guarded page needs 'wasm-unsafe-eval'
// to compile the module; no page needs 'unsafe-inline': inline scripts are
// allowed by their hash and there are no inline styles or event handlers.
func pagePolicy(page []byte) (string, error) {
	scripts, err := inlineScripts(page)
	if err != nil {
		return "", err
	}
	script := "script-src 'self'"
	for _, s := range scripts {
		sum := sha256.Sum256(s)
		script += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	if bytes.Contains(page, []byte(guardLine)) {
		script += " 'wasm-unsafe-eval'"
	}
	return strings.Join([]string{
		"default-src 'none'",
		script,
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self'",
		"form-action 'self'",
		"frame-ancestors 'none'",
		"base-uri 'none'",
	}, "; "), nil
}

// inlineScripts returns the text of each <script> element without a src
// attribute, as the browser hashes it: after the HTML parser's newline
// normalization (CRLF and lone CR become LF). It reads the pages of this
// package, not arbitrary HTML: a tag is <script ...> with no '>' inside its
// attributes, and the text ends at the first </script.
func inlineScripts(page []byte) ([][]byte, error) {
	var out [][]byte
	lower := asciiLower(page) // same offsets as page, unlike bytes.ToLower
	for i := 0; ; {
		j := bytes.Index(lower[i:], []byte("<script"))
		if j < 0 {
			return out, nil
		}
		i += j + len("<script")
		if i >= len(lower) || strings.IndexByte(" \t\n\r\f/>", lower[i]) < 0 {
			continue // e.g. <scripts>, not a script element
		}
		end := bytes.IndexByte(lower[i:], '>')
		if end < 0 {
			return nil, errors.New("unterminated <script> tag")
		}
		attrs := lower[i : i+end]
		i += end + 1
		stop := bytes.Index(lower[i:], []byte("</script"))
		if stop < 0 {
			return nil, errors.New("<script> without </script>")
		}
		text := page[i : i+stop]
		i += stop
		if hasAttr(attrs, "src") {
			continue
		}
		text = bytes.ReplaceAll(text, []byte("\r\n"), []byte("\n"))
		text = bytes.ReplaceAll(text, []byte("\r"), []byte("\n"))
		out = append(out, text)
	}
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// hasAttr reports whether a lower-cased attribute list names attr.
func hasAttr(attrs []byte, attr string) bool {
	for _, f := range bytes.FieldsFunc(attrs, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '/' }) {
		name, _, _ := bytes.Cut(f, []byte("="))
		if string(name) == attr {
			return true
		}
	}
	return false
}
