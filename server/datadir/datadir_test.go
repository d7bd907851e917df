//go:build unix

package datadir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const otherUID = 12345

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another uid needs root")
	}
}

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mustMkdir makes a directory with exactly mode, past the umask.
func mustMkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	mustNoErr(t, os.Mkdir(path, mode))
	mustNoErr(t, os.Chmod(path, mode))
}

// mustWriteFile makes a file with exactly mode, past the umask.
func mustWriteFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	mustNoErr(t, os.WriteFile(path, []byte("x"), mode))
	mustNoErr(t, os.Chmod(path, mode))
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	mustNoErr(t, err)
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode: got %o, want %o", path, got, want)
	}
}

func wantErrContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error: got %q, want it to contain %q", err, p)
		}
	}
}

func uidOf(t *testing.T, path string) uint32 {
	t.Helper()
	fi, err := os.Lstat(path)
	mustNoErr(t, err)
	return fi.Sys().(*syscall.Stat_t).Uid
}

func TestEnsure(t *testing.T) {
	t.Run("CreatesMissing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "data")
		mustNoErr(t, Ensure(dir))
		wantMode(t, dir, 0o700)
		mustNoErr(t, Ensure(dir)) // and again: nothing to do
		wantMode(t, dir, 0o700)
	})

	t.Run("TightensOwn", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o777, 0o750, 0o701} {
			dir := filepath.Join(t.TempDir(), "data")
			mustMkdir(t, dir, mode)
			mustNoErr(t, Ensure(dir))
			wantMode(t, dir, 0o700)
		}
	})

	t.Run("OtherOwnerRefused", func(t *testing.T) {
		requireRoot(t)
		dir := filepath.Join(t.TempDir(), "data")
		mustMkdir(t, dir, 0o777)
		mustNoErr(t, os.Chown(dir, otherUID, otherUID))
		err := Ensure(dir)
		wantErrContains(t, err, "owned by uid 12345", "chown 0 "+dir+" && chmod 700 "+dir)
		wantMode(t, dir, 0o777) // not ours to change
	})

	t.Run("NotADirectory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "data")
		mustWriteFile(t, path, 0o600)
		wantErrContains(t, Ensure(path), "is a regular file, not a directory", "mv "+path+" "+path+".old")
	})

	t.Run("SymlinkToOwn", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "real")
		mustMkdir(t, target, 0o755)
		link := filepath.Join(t.TempDir(), "data")
		mustNoErr(t, os.Symlink(target, link))
		mustNoErr(t, Ensure(link))
		wantMode(t, target, 0o700)
	})

	t.Run("SymlinkToOtherOwnerRefused", func(t *testing.T) {
		requireRoot(t)
		target := filepath.Join(t.TempDir(), "real")
		mustMkdir(t, target, 0o755)
		mustNoErr(t, os.Chown(target, otherUID, otherUID))
		link := filepath.Join(t.TempDir(), "data")
		mustNoErr(t, os.Symlink(target, link))
		wantErrContains(t, Ensure(link), "a symlink to "+target, "chown 0 "+target+" && chmod 700 "+target)
		wantMode(t, target, 0o755)
	})

	t.Run("SymlinkToFileRefused", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "file")
		mustWriteFile(t, target, 0o600)
		link := filepath.Join(t.TempDir(), "data")
		mustNoErr(t, os.Symlink(target, link))
		wantErrContains(t, Ensure(link), "not a directory")
	})

	t.Run("CommandQuotesPath", func(t *testing.T) {
		requireRoot(t)
		dir := filepath.Join(t.TempDir(), "it's data")
		mustMkdir(t, dir, 0o700)
		mustNoErr(t, os.Chown(dir, otherUID, otherUID))
		quoted := "'" + strings.ReplaceAll(dir, "'", `'\''`) + "'"
		wantErrContains(t, Ensure(dir), "chown 0 "+quoted+" && chmod 700 "+quoted)
	})
}

func TestCheckFile(t *testing.T) {
	t.Run("Missing", func(t *testing.T) {
		err := CheckFile(filepath.Join(t.TempDir(), "none"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("CheckFile of a missing file: got %v, want fs.ErrNotExist", err)
		}
	})

	t.Run("Modes", func(t *testing.T) {
		for _, tc := range []struct{ mode, want os.FileMode }{
			{0o666, 0o600}, {0o644, 0o600}, {0o604, 0o600}, {0o600, 0o600}, {0o400, 0o400},
		} {
			path := filepath.Join(t.TempDir(), "idleguard.db")
			mustWriteFile(t, path, tc.mode)
			mustNoErr(t, CheckFile(path))
			wantMode(t, path, tc.want)
		}
	})

	t.Run("OtherOwnerRefused", func(t *testing.T) {
		requireRoot(t)
		path := filepath.Join(t.TempDir(), "idleguard.db-wal")
		mustWriteFile(t, path, 0o666)
		mustNoErr(t, os.Chown(path, otherUID, otherUID))
		wantErrContains(t, CheckFile(path), "owned by uid 12345", "chown 0 "+path+" && chmod 600 "+path)
		wantMode(t, path, 0o666)
		if uid := uidOf(t, path); uid != otherUID {
			t.Errorf("owner after the refusal: got %d, want %d", uid, otherUID)
		}
	})

	t.Run("NotRegularRefused", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "target")
		mustWriteFile(t, target, 0o666)
		link := filepath.Join(dir, "link")
		mustNoErr(t, os.Symlink(target, link))
		sub := filepath.Join(dir, "sub")
		mustMkdir(t, sub, 0o700)
		fifo := filepath.Join(dir, "fifo")
		mustNoErr(t, syscall.Mkfifo(fifo, 0o600))
		for path, kind := range map[string]string{link: "a symlink", sub: "a directory", fifo: "a named pipe"} {
			wantErrContains(t, CheckFile(path), kind+", not a regular file", "mv "+path+" "+path+".old")
		}
		wantMode(t, target, 0o666) // the symlink was not followed
	})
}
