package token

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFile is the signing key's file name inside the data directory.
const KeyFile = "signing-key.pem"

// maxKeyFile bounds what LoadOrCreateKey reads: a PEM Ed25519 key is ~120 bytes.
const maxKeyFile = 16 << 10

// LoadOrCreateKey returns the Ed25519 signing key in dir/signing-key.pem
// (PKCS#8, PEM "PRIVATE KEY"). If the file does not exist it creates dir
// (0700) if needed and writes a new key with mode 0600, atomically: a
// temporary file is written, synced and then linked into place, so a
// reader never sees half a key and two processes starting at once agree on
// one key. An existing file that another user owns or that group or
// others may access (the error names the chown or chmod that fixes it),
// that is not a regular file, or that does not hold exactly one Ed25519
// PKCS#8 key is an error: the key is never silently replaced, since that
// would sign every user out.
func LoadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("token: key directory: %w", err)
	}
	return createKey(dir, path)
}

func loadKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("token: open signing key: %w", err)
	}
	defer f.Close()
	// Check the file we opened, not the name, so nothing can swap it between.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("token: stat signing key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("token: signing key %s is not a regular file", path)
	}
	if err := checkOwner(path, fi); err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("token: signing key %s has mode %#o, want 0600 (chmod 600 it)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("token: read signing key: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("token: signing key %s is corrupt: too large", path)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("token: signing key %s is corrupt: %w", path, err)
	}
	return key, nil
}

// parseKey reads exactly one PEM "PRIVATE KEY" block holding a PKCS#8
// Ed25519 key; anything else around it is refused.
func parseKey(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\"", block.Type)
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("unexpected PEM headers")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", k)
	}
	return key, nil
}

func marshalKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// GenerateKey returns a new Ed25519 signing key from crypto/rand: what
// LoadOrCreateKey writes to a new file, and what a KeyRing and the key
// rotate command hand a pos.KeyStore.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token: generate key: %w", err)
	}
	return key, nil
}

func createKey(dir, path string) (ed25519.PrivateKey, error) {
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	data, err := marshalKey(key)
	if err != nil {
		return nil, fmt.Errorf("token: encode key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".signing-key-*.tmp") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("token: create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a link or rename: a no-op or drops the extra name
	if err := writeSync(tmp, data); err != nil {
		return nil, fmt.Errorf("token: write key file: %w", err)
	}
	// Link refuses to replace an existing file: if another process created
	// the key first, use theirs. Where hard links are not supported, fall
	// back to rename (atomic, but last writer wins).
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return nil, fmt.Errorf("token: install key file: %w", err)
		}
	}
	syncDir(dir)
	return key, nil
}

func writeSync(f *os.File, data []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes the new directory entry durable; best effort, as some
// systems cannot sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
