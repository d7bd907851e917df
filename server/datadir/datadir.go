// Package datadir keeps idleguard's data directory (-data) and the files in
// it for the eyes of the user idleguard runs as: the database holds
// password hashes and live sessions. It creates the directory 0700,
// tightens what others could read or write, and refuses what another user
// owns with the command that fixes it.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Ensure makes dir ready to hold the database. A missing dir is created
// 0700 (with its missing parents). An existing one, or the directory a
// symlink there leads to, must be a directory this user owns; group and
// other bits are removed (chmod 700), since older versions used an existing
// directory as they found it.
func Ensure(dir string) error {
	// Absolute, so that the command in a refusal works from any directory.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		// Checked below as any existing directory is: the umask, or
		// another process creating it first, may have left other modes.
	}
	// Stat follows a symlink: what guards the files is the directory it
	// leads to.
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	what, target := "data directory "+dir, dir
	if lfi, err := os.Lstat(dir); err == nil && lfi.Mode()&fs.ModeSymlink != 0 {
		if target, err = filepath.EvalSymlinks(dir); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		what += " (a symlink to " + target + ")"
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is %s, not a directory; move it away (mv %s %s.old) or choose another data directory",
			what, describe(fi.Mode()), quote(dir), quote(dir))
	}
	return private(fi, what, target, 0o700, "data directory")
}

// CheckFile makes an existing file of the data directory (the database, its
// -wal and -shm) private before SQLite opens it as it finds it. A file that
// is not a regular one (a symlink, which could lead SQLite's writes
// anywhere, a directory, a pipe) or that another user owns is refused;
// group and other bits are removed (chmod 600). A missing file is an error
// wrapping fs.ErrNotExist.
func CheckFile(path string) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("data file: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is %s, not a regular file; move it away: mv %s %s.old",
			path, describe(fi.Mode()), quote(path), quote(path))
	}
	return private(fi, path, path, 0o600, "data file")
}

// private refuses what another user owns and takes group and other bits
// off the rest (chmod to mode).
func private(fi fs.FileInfo, what, target string, mode fs.FileMode, kind string) error {
	if err := checkOwner(fi, what, target, strconv.FormatUint(uint64(mode), 8)); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(target, mode); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	return nil
}

// checkOwner refuses a file another uid owns: this process could not make
// it private, and files SQLite creates beside it would be this user's,
// which the owner's next run could not open. The fix is to give the file
// to this user, or to run as its owner.
func checkOwner(fi fs.FileInfo, what, path, mode string) error {
	uid, ok := owner(fi)
	me := os.Geteuid()
	if !ok || uid == me {
		return nil
	}
	return fmt.Errorf("%s is owned by uid %d, not by uid %d that this process runs as; "+
		"fix it with: chown %d %s && chmod %s %s (or run as uid %d)",
		what, uid, me, me, quote(path), mode, quote(path), uid)
}

// describe names a file type for a message.
func describe(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// shellSafe matches words a POSIX shell reads as they are.
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

// quote makes path one word of a shell command an administrator can paste.
func quote(path string) string {
	if shellSafe.MatchString(path) {
		return path
	}
	return "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
}
