//go:build !(js && wasm)

package main

import "os"

// The guard runs only in a browser. This stub keeps `go build ./...` and
// `go vet ./...` working on the host, where the pure logic is also tested.
func main() {
	os.Stderr.WriteString("idleguard's guard runs in a browser: build it with GOOS=js GOARCH=wasm (make wasm)\n")
	os.Exit(2)
}
