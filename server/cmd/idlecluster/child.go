package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// console is the one terminal every child writes to, a line at a time,
// each line led by the name of who wrote it.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func newConsole(w io.Writer) *console { return &console{w: w} }

// nameWidth lines the names up: "postgres" is the longest.
const nameWidth = 8

// printf writes one line of idlecluster's own.
func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%-*s | %s\n", nameWidth, "cluster", fmt.Sprintf(format, args...))
}

// writer is an io.Writer for one output stream of the child name.
func (c *console) writer(name string) *prefixer {
	return &prefixer{c: c, prefix: fmt.Sprintf("%-*s | ", nameWidth, name)}
}

// maxLine is where a line without a newline is cut and written anyway.
const maxLine = 64 << 10

// prefixer writes every complete line with its prefix and keeps a partial
// one until the rest arrives (or Flush).
type prefixer struct {
	c       *console
	prefix  string
	partial []byte
}

func (p *prefixer) Write(b []byte) (int, error) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.partial = append(p.partial, b...)
			if len(p.partial) >= maxLine {
				p.emit(nil)
			}
			break
		}
		p.emit(b[:i])
		b = b[i+1:]
	}
	return n, nil
}

// emit writes the partial line and rest as one line. The caller holds the
// console's lock.
func (p *prefixer) emit(rest []byte) {
	line := make([]byte, 0, len(p.prefix)+len(p.partial)+len(rest)+1)
	line = append(append(append(append(line, p.prefix...), p.partial...), rest...), '\n')
	p.c.w.Write(line)
	p.partial = p.partial[:0]
}

// Flush writes a last line that had no newline.
func (p *prefixer) Flush() {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if len(p.partial) > 0 {
		p.emit(nil)
	}
}

// child is one process of the cluster.
type child struct {
	name    string
	cmd     *exec.Cmd
	stopSig syscall.Signal // what ends it cleanly
	exited  chan struct{}  // closed once it has exited
	err     error          // Wait's answer, set before exited is closed
}

// startChild starts cmd as name with its output on con. The child gets a
// process group of its own, so that the terminal's Ctrl-C reaches
// idlecluster alone and the children stop in order; should idlecluster die
// without stopping it, the kernel sends it deathSig. cred, if not nil, is
// the user it runs as.
func startChild(con *console, name string, cmd *exec.Cmd, stopSig, deathSig syscall.Signal, cred *syscall.Credential) (*child, error) {
	out, errOut := con.writer(name), con.writer(name)
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig, Credential: cred}
	// A grandchild (a PostgreSQL backend, an nginx worker) that outlives
	// its parent must not hold the output pipes, and so Wait, forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stopSig: stopSig, exited: make(chan struct{})}
	go func() { // ends when the process does
		c.err = cmd.Wait()
		out.Flush()
		errOut.Flush()
		close(c.exited)
	}()
	return c, nil
}

// status says how the child ended; call it after exited is closed.
func (c *child) status() string {
	if c.err == nil {
		return "exit status 0"
	}
	return c.err.Error()
}

// stopWait bounds a clean stop before the child's whole process group is
// killed.
const stopWait = 20 * time.Second

// stop sends the child its stop signal and waits for it to exit; after
// stopWait it kills the child's process group. A child that had already
// exited is left as it is.
func (c *child) stop(con *console) error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	if err := c.cmd.Process.Signal(c.stopSig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	select {
	case <-c.exited:
		con.printf("%s stopped (%s)", c.name, c.status())
		return nil
	case <-time.After(stopWait):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		return fmt.Errorf("%s did not stop within %v of %v: killed", c.name, stopWait, c.stopSig)
	}
}
