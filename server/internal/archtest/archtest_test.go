// Package archtest holds docs/ARCHITECTURE.md to the code, so that the
// document cannot drift: its package table must name exactly the module's
// packages and exactly the idleguard packages each one imports (from
// go list, for the host and for GOOS=js GOARCH=wasm), and every repository
// path and every pkg.Name it cites must exist. A failure says which cell,
// row or citation to change.
package archtest

import (
	"bufio"
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docPath is the document, from the module root.
const docPath = "docs/ARCHITECTURE.md"

// Column headers of the package table, as the document spells them.
const (
	colPackage   = "package"
	colImports   = "may import"
	colTestsOnly = "its tests may also import"
)

// none is how an empty imports cell reads.
const none = "—"

// row is one line of the document's package table.
type row struct {
	line      int
	path      string   // from the module root: "server/hub", "web"
	imports   []string // short names, as written
	testsOnly []string
}

// pkg is one package as go list sees it.
type pkg struct {
	path      string // from the module root
	dir       string
	imports   map[string]bool // module-relative paths of idleguard packages
	testsOnly map[string]bool // imported only by its _test.go files, not itself
}

// TestPackageTable compares the table under "## Packages" with go list.
func TestPackageTable(t *testing.T) {
	root, module := moduleRoot(t)
	rows := readTable(t, root)
	pkgs := listPackages(t, root, module)

	// Short names are the last element of a path; the table's import cells
	// use them, so they must be unambiguous.
	short := map[string]string{} // short name -> path
	for _, p := range sortedKeys(pkgs) {
		name := shortName(p)
		if other, ok := short[name]; ok {
			t.Errorf("packages %s and %s share the short name %q: the table's import cells could not tell them apart; rename one, or teach this test longer names", other, p, name)
		}
		short[name] = p
	}

	byPath := map[string]row{}
	for _, r := range rows {
		if prev, ok := byPath[r.path]; ok {
			t.Errorf("%s:%d: `%s` has a second row (the first is on line %d): delete one", docPath, r.line, r.path, prev.line)
			continue
		}
		byPath[r.path] = r
	}

	for _, r := range rows {
		p, ok := pkgs[r.path]
		if !ok {
			t.Errorf("%s:%d: the table lists `%s`, which is no longer a package of the module: delete its row (or, if it moved, rename the row to the new path)", docPath, r.line, r.path)
			continue
		}
		ok1 := checkCell(t, r, colImports, r.imports, p.imports, short)
		ok2 := checkCell(t, r, colTestsOnly, r.testsOnly, p.testsOnly, short)
		if !ok1 || !ok2 {
			t.Errorf("%s:%d: the row of `%s` should end: | %s | %s |", docPath, r.line, r.path, cell(p.imports), cell(p.testsOnly))
		}
	}
	for _, path := range sortedKeys(pkgs) {
		if _, ok := byPath[path]; !ok {
			p := pkgs[path]
			t.Errorf("%s: package `%s` is not in the table: add the row\n\t| `%s` | <what it owns, in one line> | %s | %s |",
				docPath, path, path, cell(p.imports), cell(p.testsOnly))
		}
	}
}

// checkCell compares one imports cell of r with what the code imports, and
// reports whether they agree.
func checkCell(t *testing.T, r row, column string, written []string, actual map[string]bool, short map[string]string) bool {
	t.Helper()
	agree := true
	allowed := map[string]bool{}
	for _, name := range written {
		path, ok := short[name]
		if !ok {
			t.Errorf("%s:%d: the %q cell of `%s` names %q, which is not the short name of any package in the module", docPath, r.line, column, r.path, name)
			agree = false
			continue
		}
		if allowed[path] {
			t.Errorf("%s:%d: the %q cell of `%s` names %q twice", docPath, r.line, column, r.path, name)
			agree = false
		}
		allowed[path] = true
	}
	for _, path := range sortedKeys(actual) {
		if !allowed[path] {
			what := "imports"
			if column == colTestsOnly {
				what = "has _test.go files that import"
			}
			t.Errorf("%s:%d: `%s` %s idleguard/%s, which its row does not allow: add %q to its %q cell if the architecture allows it, else remove the import",
				docPath, r.line, r.path, what, path, shortName(path), column)
			agree = false
		}
	}
	for _, path := range sortedKeys(allowed) {
		if !actual[path] {
			t.Errorf("%s:%d: the %q cell of `%s` names %q, but `%s` no longer imports it there: remove %q from the cell",
				docPath, r.line, column, r.path, shortName(path), r.path, shortName(path))
			agree = false
		}
	}
	return agree
}

// cell is how an imports cell should read: short names, sorted.
func cell(paths map[string]bool) string {
	if len(paths) == 0 {
		return none
	}
	var names []string
	for p := range paths {
		names = append(names, shortName(p))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func shortName(path string) string { return path[strings.LastIndex(path, "/")+1:] }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// moduleRoot walks up from the test's directory to go.mod and returns the
// directory and the module path.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for line := range strings.Lines(string(data)) {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(rest), `"`)
				}
			}
			t.Fatalf("%s has no module line", filepath.Join(dir, "go.mod"))
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// readTable parses the package table: the first table after "## Packages"
// whose header has the package, may-import and tests columns.
func readTable(t *testing.T, root string) []row {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, docPath))
	if err != nil {
		t.Fatal(err)
	}
	var (
		rows                   []row
		inSection, inTable     bool
		iPkg, iImp, iTest, num int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		num++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "## ") {
			if inTable {
				break
			}
			inSection = line == "## Packages"
			continue
		}
		if !inSection {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break // the table has ended
			}
			continue
		}
		cells := splitRow(line)
		if !inTable {
			iPkg, iImp, iTest = slices.Index(cells, colPackage), slices.Index(cells, colImports), slices.Index(cells, colTestsOnly)
			if iPkg < 0 || iImp < 0 || iTest < 0 {
				t.Fatalf("%s:%d: the table under \"## Packages\" needs the columns %q, %q and %q; its header is %q", docPath, num, colPackage, colImports, colTestsOnly, line)
			}
			inTable = true
			continue
		}
		if strings.Trim(line, "|-: ") == "" {
			continue // the separator
		}
		if len(cells) <= max(iPkg, iImp, iTest) {
			t.Errorf("%s:%d: a table row needs %d cells, this one has %d: %q", docPath, num, max(iPkg, iImp, iTest)+1, len(cells), line)
			continue
		}
		rows = append(rows, row{
			line:      num,
			path:      strings.Trim(cells[iPkg], "` "),
			imports:   names(cells[iImp]),
			testsOnly: names(cells[iTest]),
		})
	}
	if !inTable {
		t.Fatalf("%s: no table under a \"## Packages\" heading", docPath)
	}
	return rows
}

func splitRow(line string) []string {
	cells := strings.Split(strings.Trim(line, "|"), "|")
	for i, c := range cells {
		cells[i] = strings.TrimSpace(c)
	}
	return cells
}

// names reads a cell such as "`pos`, `protocol`" or "—".
func names(c string) []string {
	var out []string
	for _, n := range strings.Split(c, ",") {
		n = strings.Trim(strings.TrimSpace(n), "`")
		if n != "" && n != none && n != "-" {
			out = append(out, n)
		}
	}
	return out
}

// listPackages runs go list for the host and for js/wasm (the browser
// module's own files build only there) and joins what they import.
func listPackages(t *testing.T, root, module string) map[string]*pkg {
	t.Helper()
	pkgs := map[string]*pkg{}
	for _, target := range []struct {
		env    []string
		strict bool // a package's error fails the test
	}{
		{nil, true},
		{[]string{"GOOS=js", "GOARCH=wasm"}, false},
	} {
		const f = `{{.ImportPath}}|{{.Dir}}|{{join .Imports " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}|{{if .Error}}{{.Error}}{{end}}`
		cmd := exec.Command("go", "list", "-e", "-f", f, "./...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), target.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s go list: %v\n%s", strings.Join(target.env, " "), err, stderr.Bytes())
		}
		for line := range strings.Lines(string(out)) {
			f := strings.SplitN(strings.TrimRight(line, "\n"), "|", 5)
			if len(f) != 5 {
				t.Fatalf("go list printed %q", line)
			}
			if f[4] != "" {
				if target.strict {
					t.Fatalf("go list: %s: %s", f[0], f[4])
				}
				continue // e.g. nothing of it builds for js/wasm
			}
			path, ok := relative(module, f[0])
			if !ok {
				continue
			}
			p := pkgs[path]
			if p == nil {
				if !target.strict {
					continue
				}
				p = &pkg{path: path, dir: f[1], imports: map[string]bool{}, testsOnly: map[string]bool{}}
				pkgs[path] = p
			}
			for _, imp := range strings.Fields(f[2]) {
				if rel, ok := relative(module, imp); ok {
					p.imports[rel] = true
				}
			}
			for _, imp := range strings.Fields(f[3]) {
				if rel, ok := relative(module, imp); ok && rel != path {
					p.testsOnly[rel] = true
				}
			}
		}
	}
	for _, p := range pkgs {
		for imp := range p.imports {
			delete(p.testsOnly, imp)
		}
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// relative turns "idleguard/server/hub" into "server/hub".
func relative(module, importPath string) (string, bool) {
	return strings.CutPrefix(importPath, module+"/")
}

// citedPath is a repository path as the document writes one: it starts
// with a top-level folder and ends in a letter, digit or underscore (so a
// sentence's full stop or a folder's slash is not part of it).
var citedPath = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])((?:server|web|wasm|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_])`)

// TestCitedPathsExist checks every server/..., web/..., wasm/... and
// docs/... path in the document.
func TestCitedPathsExist(t *testing.T) {
	root, _ := moduleRoot(t)
	data, err := os.ReadFile(filepath.Join(root, docPath))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		for _, m := range citedPath.FindAllStringSubmatch(line, -1) {
			n++
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(m[1]))); err != nil {
				t.Errorf("%s:%d cites %s, which does not exist: correct the path or drop the citation", docPath, i+1, m[1])
			}
		}
	}
	if n == 0 {
		t.Errorf("%s cites no paths: the pattern or the document is wrong", docPath)
	}
}

// citedName is a code span such as `idle.Tracker.SetPolicy` or
// `sessions.UpdateExpiration`: a package's short name, a name declared at
// its top level, and optionally a method or field of it.
var citedName = regexp.MustCompile("`([a-z][a-z0-9]*)\\.([A-Za-z_][A-Za-z0-9_]*)(?:\\.([A-Za-z_][A-Za-z0-9_]*))?(?:\\(\\))?`")

// fileSuffixes are what follows a dot in a file name: `hub.go` is a file,
// not a name in package hub.
var fileSuffixes = map[string]bool{"go": true, "md": true, "js": true, "html": true, "css": true, "wasm": true, "txt": true, "json": true, "br": true, "gz": true, "sql": true}

// TestCitedNamesExist checks that every `pkg.Name` and `pkg.Type.Member`
// the document cites, pkg being a package of the table, is declared in
// that package's files: the walk-through cannot name a function that has
// been renamed or removed.
func TestCitedNamesExist(t *testing.T) {
	root, module := moduleRoot(t)
	pkgs := listPackages(t, root, module)
	dirs := map[string]string{} // short name -> directory
	for path, p := range pkgs {
		dirs[shortName(path)] = p.dir
	}
	data, err := os.ReadFile(filepath.Join(root, docPath))
	if err != nil {
		t.Fatal(err)
	}
	decls := map[string]*declared{}
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		for _, m := range citedName.FindAllStringSubmatch(line, -1) {
			pkgName, name, member := m[1], m[2], m[3]
			dir, ok := dirs[pkgName]
			if !ok || (member == "" && fileSuffixes[name]) {
				continue
			}
			d := decls[pkgName]
			if d == nil {
				d = declarations(t, dir)
				decls[pkgName] = d
			}
			n++
			cited := strings.Trim(m[0], "`")
			if !d.top[name] {
				t.Errorf("%s:%d cites %s, but package %s declares no %s: correct or drop the citation", docPath, i+1, cited, pkgName, name)
				continue
			}
			if member != "" && !d.has(name, member) {
				t.Errorf("%s:%d cites %s, but %s.%s has no method or field %s: correct or drop the citation", docPath, i+1, cited, pkgName, name, member)
			}
		}
	}
	if n == 0 {
		t.Errorf("%s cites no names: the pattern or the document is wrong", docPath)
	}
}

// declared is what one package declares, from its Go files (test files
// only when it has nothing else).
type declared struct {
	top      map[string]bool
	members  map[string]map[string]bool // type -> its methods, fields, interface methods
	embedded map[string][]string        // type -> same-package types it embeds
}

func (d *declared) has(typ, member string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(t string) bool {
		if seen[t] {
			return false
		}
		seen[t] = true
		if d.members[t][member] {
			return true
		}
		return slices.ContainsFunc(d.embedded[t], walk)
	}
	return walk(typ)
}

func declarations(t *testing.T, dir string) *declared {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var src []string
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			src = append(src, f)
		}
	}
	if len(src) == 0 {
		src = files
	}
	d := &declared{top: map[string]bool{}, members: map[string]map[string]bool{}, embedded: map[string][]string{}}
	add := func(typ, member string) {
		if d.members[typ] == nil {
			d.members[typ] = map[string]bool{}
		}
		d.members[typ][member] = true
	}
	fset := token.NewFileSet()
	for _, f := range src {
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, decl := range file.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				if decl.Recv == nil {
					d.top[decl.Name.Name] = true
				} else if recv := receiverType(decl.Recv.List[0].Type); recv != "" {
					add(recv, decl.Name.Name)
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					switch spec := spec.(type) {
					case *ast.ValueSpec:
						for _, id := range spec.Names {
							d.top[id.Name] = true
						}
					case *ast.TypeSpec:
						name := spec.Name.Name
						d.top[name] = true
						var fields *ast.FieldList
						switch typ := spec.Type.(type) {
						case *ast.StructType:
							fields = typ.Fields
						case *ast.InterfaceType:
							fields = typ.Methods
						}
						if fields == nil {
							continue
						}
						for _, field := range fields.List {
							for _, id := range field.Names {
								add(name, id.Name)
							}
							if len(field.Names) == 0 {
								if e := receiverType(field.Type); e != "" {
									d.embedded[name] = append(d.embedded[name], e)
									add(name, e)
								}
							}
						}
					}
				}
			}
		}
	}
	return d
}

// receiverType is T for T, *T, T[K] and *T[K]; "" for anything else
// (a type from another package, say).
func receiverType(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}
