//go:build unix

package token

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner refuses a key file that another user owns: whoever owns it
// can chmod it open or replace the key, and so sign any token.
func checkOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("token: signing key %s: cannot tell its owner", path)
	}
	if uid := os.Geteuid(); int64(st.Uid) != int64(uid) {
		return fmt.Errorf("token: signing key %s is owned by uid %d, want uid %d, which runs this server (chown %d %s, or remove it to make a new key, which signs every user out)",
			path, st.Uid, uid, uid, path)
	}
	return nil
}
