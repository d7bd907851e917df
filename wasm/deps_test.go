//go:build !(js && wasm)

package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The module is small by construction (DESIGN.md): these packages would each
// pull in enough of the standard library to double or triple its size. The
// page's own fetch, WebSocket, URL and JSON.parse do their work instead.
var forbiddenDeps = []string{"fmt", "reflect", "encoding/json", "net", "net/url", "net/http"}

func forbidden(pkg string) bool {
	return slices.Contains(forbiddenDeps, pkg) ||
		strings.HasPrefix(pkg, "net/") || strings.HasPrefix(pkg, "encoding/json/")
}

const depsFile = "deps.txt"

const depsUpdate = "go test ./wasm -run TestModuleDependencies -update"

var updateDeps = flag.Bool("update", false, "rewrite "+depsFile+" from go list")

// TestModuleDependencies compares what the module links with deps.txt, as
// tailscale's depaware.txt does for its binaries: a new dependency shows in
// review as a change to that file. It runs on the host, because under Node
// the test cannot run the go command.
func TestModuleDependencies(t *testing.T) {
	imports := moduleImports(t)

	var bad []string
	for pkg := range imports {
		if forbidden(pkg) {
			bad = append(bad, pkg+" (via "+strings.Join(importChain(imports, "idleguard/wasm", pkg), " -> ")+")")
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		t.Errorf("the browser module must not depend on fmt, reflect, encoding/json or net/... (DESIGN.md; use strconv, QueryEscape and the page's JSON.parse), whatever %s says; it depends on\n  %s",
			depsFile, strings.Join(bad, "\n  "))
	}

	var got []string
	for pkg := range imports {
		// The standard library's internal packages follow from the others
		// and move with every Go release: they would only be noise here.
		if !isStdInternal(pkg) {
			got = append(got, pkg)
		}
	}
	slices.Sort(got)

	if *updateDeps {
		var b strings.Builder
		b.WriteString("# Every package the browser module links (GOOS=js GOARCH=wasm go list -deps ./wasm),\n")
		b.WriteString("# except the standard library's internal packages. Checked by TestModuleDependencies;\n")
		b.WriteString("# after a deliberate change, regenerate with: " + depsUpdate + "\n")
		for _, pkg := range got {
			b.WriteString(pkg + "\n")
		}
		if err := os.WriteFile(depsFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}

	want := readDeps(t)
	added, removed := difference(got, want), difference(want, got)
	if len(added)+len(removed) > 0 {
		t.Errorf("the module's dependencies are not those of wasm/%s:\n  added:   %s\n  removed: %s\nif that is intended, update the list with\n  %s\nand let review see the change",
			depsFile, orNone(added), orNone(removed), depsUpdate)
	}
}

// moduleImports runs go list for the module as the browser gets it and
// returns each package it links with that package's imports.
func moduleImports(t *testing.T) map[string][]string {
	t.Helper()
	goCmd, err := exec.LookPath("go") // go test puts its own GOROOT/bin first in PATH
	if err != nil {
		t.Fatalf("cannot run go list: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", ".")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GOOS=js GOARCH=wasm go list -deps ./wasm: %v\n%s", err, stderr.Bytes())
	}
	imports := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 {
			imports[f[0]] = f[1:]
		}
	}
	if _, ok := imports["idleguard/wasm"]; !ok {
		t.Fatalf("go list did not list idleguard/wasm itself:\n%s", out)
	}
	return imports
}

// importChain returns the shortest import path from one package to another.
func importChain(imports map[string][]string, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		if pkg == to {
			var chain []string
			for p := to; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, next := range imports[pkg] {
			if _, seen := prev[next]; !seen {
				prev[next] = pkg
				queue = append(queue, next)
			}
		}
	}
	return []string{from, "?", to}
}

func isStdInternal(pkg string) bool {
	first, _, _ := strings.Cut(pkg, "/")
	if strings.Contains(first, ".") || first == "idleguard" {
		return false // a module's package, not the standard library's
	}
	return first == "internal" || first == "vendor" ||
		strings.Contains(pkg, "/internal/") || strings.HasSuffix(pkg, "/internal")
}

func readDeps(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(depsFile)
	if err != nil {
		t.Fatalf("%v: create it with\n  %s", err, depsUpdate)
	}
	var deps []string
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			deps = append(deps, line)
		}
	}
	return deps
}

// difference returns what is in a but not in b.
func difference(a, b []string) []string {
	var d []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			d = append(d, s)
		}
	}
	return d
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
