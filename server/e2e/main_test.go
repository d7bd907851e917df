// Package e2e holds the end-to-end tests: the real pages and the guard
// module in headless Chromium against the program run in-process. They
// need Debian's chromium and a built module (make test has both); under
// `go test -short`, or without chromium, the package skips with a reason.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"idleguard/server/internal/headless"
)

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
	os.Exit(m.Run())
}
