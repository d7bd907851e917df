// Package e2e holds the end-to-end tests: the real pages and the guard
// module in headless Chromium against the program run in-process. They
// need Debian's chromium and a built module (make test has both); under
// `go test -short`, or without chromium, the package skips with a reason.
// The cluster test also needs PostgreSQL and redis-server, and fails
// without them, saying how to install them (as pgtest and redistest do).
package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"idleguard/server/internal/headless"
	"idleguard/server/internal/pgtest"
)

// pg is the cluster test's PostgreSQL server, started by the first test
// that asks for a database and stopped by TestMain; the tests on one
// node never start it.
var pg = pgtest.New()

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skip: the Chromium tests do not run under -short")
		os.Exit(0)
	}
	if _, err := headless.Path(); err != nil {
		fmt.Printf("skip: the Chromium tests need chromium (apt-get install -y chromium): %v\n", err)
		os.Exit(0)
	}
	os.Exit(pg.Main(m))
}
