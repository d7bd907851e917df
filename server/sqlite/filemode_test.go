//go:build unix

package sqlite

import (
	"context"
	"idleguard/server/pos"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// wantMode checks a file's permission bits.
func wantMode(tb testing.TB, path string, want os.FileMode) {
	tb.Helper()
	fi, err := os.Stat(path)
	mustNoErr(tb, err)
	if got := fi.Mode().Perm(); got != want {
		tb.Errorf("%s mode: got %o, want %o", filepath.Base(path), got, want)
	}
}

// mustMakeDB creates a database with a user in it and closes it; the last
// close removes the -wal and -shm files.
func mustMakeDB(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "idleguard.db")
	db, err := Open(context.Background(), path)
	mustNoErr(tb, err)
	seed(tb, db)
	mustNoErr(tb, db.Close())
	return path
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("giving a file to another uid needs root")
	}
}

// TestOpenExistingFiles: Open makes existing files private before SQLite
// uses them, and refuses what it must not touch. Before, only a new file
// was made 0600: an existing 0666 one stayed so, and its -wal and -shm
// came out 0666 as well.
func TestOpenExistingFiles(t *testing.T) {
	ctx := context.Background()

	t.Run("LooseModesTightened", func(t *testing.T) {
		path := mustMakeDB(t)
		mustNoErr(t, os.Chmod(path, 0o666))
		// Left by a crash, or by a version that did not check them.
		for _, p := range []string{path + "-wal", path + "-shm"} {
			mustNoErr(t, os.WriteFile(p, nil, 0o666))
			mustNoErr(t, os.Chmod(p, 0o666)) // past the umask
		}
		db := mustOpenPath(t, path)
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			wantMode(t, p, 0o600)
		}
		if _, err := db.UserByName(ctx, pos.DefaultDomain, "admin"); err != nil {
			t.Errorf("UserByName after reopening: %v", err)
		}
	})

	// The CLI opens the file while the server has it open.
	t.Run("BesideARunningServer", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "idleguard.db")
		mustOpenPath(t, path)
		for _, p := range []string{path + "-wal", path + "-shm"} {
			mustNoErr(t, os.Chmod(p, 0o644))
		}
		mustOpenPath(t, path)
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			wantMode(t, p, 0o600)
		}
	})

	t.Run("OtherOwnerRefused", func(t *testing.T) {
		requireRoot(t)
		for _, suffix := range []string{"", "-wal"} {
			path := mustMakeDB(t)
			if suffix != "" {
				mustNoErr(t, os.WriteFile(path+suffix, nil, 0o644))
			}
			mustNoErr(t, os.Chown(path+suffix, 12345, 12345))
			mustNoErr(t, os.Chmod(path+suffix, 0o644))
			db, err := Open(ctx, path)
			if err == nil {
				db.Close()
				t.Fatalf("Open with %s owned by uid 12345: got nil error, want a refusal", filepath.Base(path+suffix))
			}
			if want := "chown 0 " + path + suffix; !strings.Contains(err.Error(), want) {
				t.Errorf("error: got %q, want it to contain %q", err, want)
			}
			fi, err := os.Stat(path + suffix)
			mustNoErr(t, err)
			if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 12345 || fi.Mode().Perm() != 0o644 {
				t.Errorf("%s after the refusal: got uid %d mode %o, want it untouched", filepath.Base(path+suffix), uid, fi.Mode().Perm())
			}
		}
	})

	t.Run("NotRegularRefused", func(t *testing.T) {
		path := mustMakeDB(t)
		elsewhere := filepath.Join(t.TempDir(), "elsewhere")
		mustNoErr(t, os.WriteFile(elsewhere, nil, 0o666))
		mustNoErr(t, os.Chmod(elsewhere, 0o666)) // past the umask
		mustNoErr(t, os.Symlink(elsewhere, path+"-wal"))
		db, err := Open(ctx, path)
		if err == nil {
			db.Close()
			t.Fatal("Open with a symlink for -wal: got nil error, want a refusal")
		}
		if !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("error: got %q, want it to say not a regular file", err)
		}
		wantMode(t, elsewhere, 0o666) // not followed

		dir := filepath.Join(t.TempDir(), "idleguard.db")
		mustNoErr(t, os.Mkdir(dir, 0o700))
		if db, err := Open(ctx, dir); err == nil {
			db.Close()
			t.Fatal("Open of a directory: got nil error, want a refusal")
		}
	})
}
