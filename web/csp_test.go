package web

import (
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

var pageNames = []string{"login", "pos", "admin", "forbidden"}

// scriptElement finds script elements the way a reader of the pages would,
// independently of inlineScripts: the start tag's attributes and the text.
var scriptElement = regexp.MustCompile(`(?is)<script(\s[^>]*)?>(.*?)</script\s*>`)

func sourceHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// directives splits a policy into its directives, each a list of sources.
func directives(t *testing.T, policy string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for d := range strings.SplitSeq(policy, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			t.Errorf("policy %q has an empty directive", policy)
			continue
		}
		if _, dup := out[f[0]]; dup {
			t.Errorf("policy %q names %s twice (the browser ignores the second)", policy, f[0])
		}
		out[f[0]] = f[1:]
	}
	return out
}

// Every inline script of a page is allowed by its hash in that page's CSP,
// and the CSP allows no other hash: the policy follows the page.
func TestCSPHashesEveryInlineScript(t *testing.T) {
	a := mustAssets(t)
	for _, name := range pageNames {
		page, _ := a.Page(name)
		var want []string
		for _, m := range scriptElement.FindAllStringSubmatch(string(page), -1) {
			if regexp.MustCompile(`(?i)\ssrc\s*=`).MatchString(m[1]) {
				continue
			}
			want = append(want, sourceHash(m[2]))
		}
		if name == "login" || name == "pos" || name == "admin" {
			if len(want) == 0 {
				t.Errorf("%s: found no inline script; the page has one", name)
			}
		}
		var got []string
		for _, src := range directives(t, a.CSP(name))["script-src"] {
			if strings.HasPrefix(src, "'sha256-") {
				got = append(got, src)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: script-src hashes %v, want the page's inline scripts %v", name, got, want)
		}
	}
}

// The policy of each page, directive by directive.
func TestCSPDirectives(t *testing.T) {
	a := mustAssets(t)
	for _, name := range pageNames {
		page, _ := a.Page(name)
		policy := a.CSP(name)
		if got := a.CSP(name + ".html"); got != policy {
			t.Errorf("CSP(%q) = %q, want CSP(%q) = %q", name+".html", got, name, policy)
		}
		d := directives(t, policy)
		for directive, want := range map[string]string{
			"default-src":     "'none'",
			"style-src":       "'self'",
			"img-src":         "'self' data:",
			"connect-src":     "'self'",
			"form-action":     "'self'",
			"frame-ancestors": "'none'",
			"base-uri":        "'none'",
		} {
			if got := strings.Join(d[directive], " "); got != want {
				t.Errorf("%s: %s %q, want %q", name, directive, got, want)
			}
		}
		script := d["script-src"]
		if len(script) == 0 || script[0] != "'self'" {
			t.Errorf("%s: script-src %v, want 'self' first", name, script)
		}
		for _, src := range script {
			if src == "'unsafe-inline'" || src == "'unsafe-eval'" || src == "*" || strings.HasSuffix(src, ":") {
				t.Errorf("%s: script-src allows %s", name, src)
			}
		}
		guarded := strings.Contains(string(page), guardLine)
		if got := slices.Contains(script, "'wasm-unsafe-eval'"); got != guarded {
			t.Errorf("%s: 'wasm-unsafe-eval' in script-src = %v, want %v (only a guarded page compiles the module)", name, got, guarded)
		}
		if len(d) != 8 {
			t.Errorf("%s: %d directives in %q, want 8", name, len(d), policy)
		}
	}
	d := directives(t, a.CSP("index"))
	if got := strings.Join(d["default-src"], " "); got != "'none'" || len(d["script-src"]) != 0 {
		t.Errorf("CSP of an unknown page %q: want default-src 'none' and no script-src", a.CSP("index"))
	}
}

// The hashes are computed from the pages NewAssets reads, as the browser
// computes them: the text between the tags after CRLF becomes LF; an
// external script is not hashed; a changed script gets a new hash.
func TestCSPFollowsThePage(t *testing.T) {
	const page = "<!doctype html><script src=\"/a.js\"></script><p>x</p>\n" +
		"<script>one()</script>\n<SCRIPT type=\"module\">\r\ntwo()\r\n</SCRIPT >\n" +
		"<scripts>not one</scripts>" + guardLine
	a, err := newAssets(synthetic(fstest.MapFS{"pos.html": {Data: []byte(page)}}))
	if err != nil {
		t.Fatal(err)
	}
	script := directives(t, a.CSP("pos"))["script-src"]
	want := []string{"'self'", sourceHash("one()"), sourceHash("\ntwo()\n"), "'wasm-unsafe-eval'"}
	if !slices.Equal(script, want) {
		t.Errorf("script-src %v, want %v", script, want)
	}
	if got := directives(t, a.CSP("login"))["script-src"]; !slices.Equal(got, []string{"'self'"}) {
		t.Errorf("a page without scripts: script-src %v, want only 'self'", got)
	}

	b, err := newAssets(synthetic(fstest.MapFS{"pos.html": {Data: []byte(strings.Replace(page, "one()", "one(1)", 1))}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := b.CSP("pos"); strings.Contains(got, sourceHash("one()")) || !strings.Contains(got, sourceHash("one(1)")) {
		t.Errorf("after the script changed: %q, want the new hash only", got)
	}

	for _, bad := range []string{"<script>never closed", "<script src=\"/a.js\""} {
		if _, err := newAssets(synthetic(fstest.MapFS{"admin.html": {Data: []byte(bad)}})); err == nil {
			t.Errorf("page %q: no error", bad)
		}
	}
}

// The policy has no 'unsafe-inline' and no 'unsafe-eval', so the pages must
// not need them: no style attributes or elements, no inline event handlers,
// no javascript: URLs, no eval of strings.
func TestPagesNeedNoUnsafeInline(t *testing.T) {
	for _, c := range []struct {
		files []string
		bad   *regexp.Regexp
		what  string
	}{
		{[]string{"login.html", "pos.html", "admin.html", "forbidden.html"}, regexp.MustCompile(`(?i)\sstyle\s*=|<style[\s>]`), "an inline style"},
		{[]string{"login.html", "pos.html", "admin.html", "forbidden.html"}, regexp.MustCompile(`(?i)<[a-z][^>]*\son[a-z]+\s*=`), "an inline event handler"},
		{[]string{"login.html", "pos.html", "admin.html", "forbidden.html", "idleguard.js", "pages.js"}, regexp.MustCompile(`(?i)javascript:`), "a javascript: URL"},
		{[]string{"login.html", "pos.html", "admin.html", "idleguard.js", "pages.js"}, regexp.MustCompile(`\beval\(|new Function\b|setTimeout\(\s*['"]|setAttribute\(\s*['"](style|on[a-z]+)['"]`), "string evaluation or an inline style or handler set by script"},
		{[]string{"style.css"}, regexp.MustCompile(`(?i)@import|url\(\s*['"]?(https?:)?//`), "a stylesheet from elsewhere"},
	} {
		for _, name := range c.files {
			b, err := fs.ReadFile(files, name)
			if err != nil {
				t.Fatal(err)
			}
			if m := c.bad.Find(b); m != nil {
				t.Errorf("%s has %s (%q): the Content-Security-Policy blocks it", name, c.what, m)
			}
		}
	}
}
