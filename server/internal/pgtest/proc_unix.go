//go:build unix && !linux

package pgtest

import "syscall"

// procAttr runs a child as cred (nil: as this process). Only Linux can
// end it when this process dies; elsewhere a crashed test run leaves its
// server running.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
