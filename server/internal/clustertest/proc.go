package clustertest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"syscall"
	"testing"
	"time"

	"idleguard/server/internal/apptest"
)

// Build builds the idleguard binary into a temp dir of t and returns its
// path (the build cache makes every build after the first a link).
func Build(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "idleguard")
	out, err := exec.Command(goBin, "build", "-o", bin, "idleguard/server/cmd/idleguard").CombinedOutput()
	if err != nil {
		t.Fatalf("clustertest: go build: %v\n%s", err, out)
	}
	return bin
}

// Proc is one node run as a subprocess of the built binary.
type Proc struct {
	Name string
	Base string
	Log  *apptest.SyncBuffer

	cmd    *exec.Cmd
	exited chan struct{}
}

// listening is the log line that names the address (serve.go's "listening").
var listening = regexp.MustCompile(`msg=listening addr=(https?://\S+)`)

// StartProc runs bin as node name of c, with apptest's flags (a new data
// directory, 127.0.0.1:0, -demo, -min-expiration 1, the cheapest bcrypt),
// c's cluster flags and args, and waits until it answers /healthz. The
// test's cleanup stops it (SIGTERM) unless it was killed; its log is shown
// if the test failed.
func (c *Cluster) StartProc(t *testing.T, bin, name string, args ...string) *Proc {
	t.Helper()
	all := append([]string{"-data", t.TempDir(), "-addr", "127.0.0.1:0", "-demo", "-min-expiration", "1",
		"-log-level", "debug", "-password-cost", "4"}, c.Args(name, args...)...)
	p := &Proc{Name: name, Log: &apptest.SyncBuffer{}, cmd: exec.Command(bin, all...), exited: make(chan struct{})}
	p.cmd.Env = os.Environ()
	p.cmd.Stderr = p.Log
	// If the test binary dies, so does the node.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("clustertest: start node %s: %v", name, err)
	}
	addr := make(chan string, 1)
	go func() { // ends with the process's stdout
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.Log.Write([]byte(line + "\n"))
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("node %s log:\n%s", name, p.Log.String())
		}
	})
	select {
	case p.Base = <-addr:
	case <-p.exited:
		t.Fatalf("clustertest: node %s exited before listening: %v\n%s", name, p.cmd.ProcessState, p.Log.String())
	case <-time.After(apptest.WaitLimit):
		t.Fatalf("clustertest: node %s did not listen within %v\n%s", name, apptest.WaitLimit, p.Log.String())
	}
	resp, body := apptest.Request(t, "GET", p.Base+"/healthz", "", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("clustertest: node %s: GET /healthz: %d %s", name, resp.StatusCode, body)
	}
	return p
}

// Server is p as apptest's helpers take it (requests and sockets only:
// stop p itself, not the view).
func (p *Proc) Server() *apptest.Server {
	return &apptest.Server{Base: p.Base, Log: p.Log}
}

// Kill ends the node with SIGKILL, as a crash would, and waits for it.
func (p *Proc) Kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("clustertest: kill node %s: %v", p.Name, err)
	}
	<-p.exited
}

// stop asks the node to shut down (SIGTERM), killing it if it takes over
// WaitLimit.
func (p *Proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(apptest.WaitLimit):
		p.cmd.Process.Kill()
		<-p.exited
	}
}
