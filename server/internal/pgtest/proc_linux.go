package pgtest

import "syscall"

// procAttr runs a child as cred (nil: as this process) and, should this
// process die without stopping it (a panic, a test timeout), has the
// kernel send it SIGQUIT, PostgreSQL's immediate shutdown, so that no
// server outlives its tests.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
