package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

func TestWritesBrotliAndGzip(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "module.wasm")
	body := bytes.Repeat([]byte("idleguard wasm bytes "), 5000)
	if err := os.WriteFile(name, body, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{name}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(out.String(), "module.wasm: raw 105000 B") {
		t.Errorf("output %q does not report the raw size", out.String())
	}
	for ext, open := range map[string]func(io.Reader) (io.Reader, error){
		".br": func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
		".gz": func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	} {
		packed, err := os.ReadFile(name + ext)
		if err != nil {
			t.Fatalf("%s: %v", ext, err)
		}
		r, err := open(bytes.NewReader(packed))
		if err != nil {
			t.Fatalf("%s: %v", ext, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s does not decompress to the original (err %v)", ext, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("left %d files, want 3 (no temporary files)", len(entries))
	}
}

func TestMissingFile(t *testing.T) {
	if err := run([]string{filepath.Join(t.TempDir(), "nope")}, io.Discard); err == nil {
		t.Error("no error for a missing file")
	}
	if err := run(nil, io.Discard); err == nil {
		t.Error("no error without arguments")
	}
}
