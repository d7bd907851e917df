// Command precompress writes FILE.br (brotli, best compression) and FILE.gz
// (gzip, best compression) beside each FILE, for the web package to serve
// without compressing per request. Each output appears atomically (written
// to a temporary file, then renamed), so a server reading the directory never
// sees half a file. It prints the sizes.
//
//	go run ./server/cmd/precompress web/build/idleguard.wasm web/build/wasm_exec.js
package main

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/andybalholm/brotli"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "precompress:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: precompress FILE...")
	}
	for _, name := range args {
		body, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		br, err := writeCompressed(name+".br", body, func(w io.Writer) io.WriteCloser {
			return brotli.NewWriterLevel(w, brotli.BestCompression)
		})
		if err != nil {
			return err
		}
		gz, err := writeCompressed(name+".gz", body, func(w io.Writer) io.WriteCloser {
			zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression) // the level is valid
			return zw
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: raw %s, gzip %s, brotli %s\n", name, size(len(body)), size(gz), size(br))
	}
	return nil
}

// writeCompressed compresses body into name atomically and returns the
// compressed size.
func writeCompressed(name string, body []byte, compressor func(io.Writer) io.WriteCloser) (n int, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	counter := &countingWriter{w: tmp}
	zw := compressor(counter)
	if _, err = zw.Write(body); err != nil {
		return 0, err
	}
	if err = zw.Close(); err != nil {
		return 0, err
	}
	if err = tmp.Sync(); err != nil {
		return 0, err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return 0, err
	}
	if err = tmp.Close(); err != nil {
		return 0, err
	}
	if err = os.Rename(tmp.Name(), name); err != nil {
		return 0, err
	}
	return counter.n, nil
}

type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// size prints bytes with their KB (1000 bytes), as the budget is stated.
func size(n int) string {
	return strconv.Itoa(n) + " B (" + strconv.FormatFloat(float64(n)/1000, 'f', 1, 64) + " KB)"
}
