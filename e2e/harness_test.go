package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// bin builds ./cmd/<name> once per test run and returns its path.
func bin(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "mlog-e2e-bin")
		if buildErr != nil {
			return
		}
		for _, n := range []string{"mlog", "server", "topic", "producer", "consumer"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, n), "../cmd/"+n).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", n, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	given.mu.Lock()
	defer given.mu.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		// Closed at once, a port can come back from the next Listen:
		// never hand it out twice (two nodes' Serf and Raft ports were).
		if !given.ports[port] {
			given.ports[port] = true
			return port
		}
	}
}

// given is every port freePort has handed out in this process.
var given = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// server is a broker process.
type server struct {
	cmd    *exec.Cmd
	addr   string
	stderr *lockedWriter
	done   chan error
}

// logs returns what the server wrote to stderr so far.
func (s *server) logs() string {
	s.stderr.mu.Lock()
	defer s.stderr.mu.Unlock()
	return s.stderr.w.String()
}

// startServer runs `server` with args plus a free --rpc-port and waits until
// it accepts connections.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	// Ports chosen here were free a moment ago; another process may take
	// one before the server binds it. Then the server is started again on
	// new ones. Ports the caller chose are kept.
	for attempt := 0; ; attempt++ {
		s, taken := tryStartServer(t, env, args)
		if !taken {
			return s
		}
		if attempt == 4 {
			t.Fatalf("ports kept being taken:\n%s", s.logs())
		}
	}
}

func tryStartServer(t *testing.T, env []string, args []string) (*server, bool) {
	t.Helper()
	args = slices.Clone(args)
	port := freePort(t)
	own := false
	if i := slices.Index(args, "--rpc-port"); i >= 0 && i+1 < len(args) {
		port, _ = strconv.Atoi(args[i+1])
	} else {
		args = append(args, "--rpc-port", strconv.Itoa(port))
		own = true
	}
	if !slices.Contains(args, "--bind-addr") {
		args = append(args, "--bind-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		own = true
	}
	if !slices.Contains(args, "--http-addr") {
		args = append(args, "--http-addr", "127.0.0.1:0")
	}
	if !slices.Contains(args, "--raft-addr") {
		args = append(args, "--raft-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		own = true
	}
	cmd := exec.Command(bin(t, "server"), args...)
	cmd.Env = append(os.Environ(), env...)
	s := &server{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), stderr: &lockedWriter{w: &bytes.Buffer{}}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("server stderr:\n%s", s.logs())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return s, false
		}
		select {
		case err := <-s.done:
			s.done <- err
			if own && strings.Contains(s.logs(), "address already in use") {
				return s, true
			}
			t.Fatalf("server exited: %v\n%s", err, s.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not listen on %s", s.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatalf("server exited with %v after SIGTERM\n%s", err, s.logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop within 20 s of SIGTERM")
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// run runs a command with a deadline and returns its stdout.
func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewBufferString(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstdout: %s\nstderr: %s", name, args, err, out.String(), errb.String())
	}
	return out.String()
}

// kcat returns the kcat binary, or skips (fails under CI, which installs it).
func kcat(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("kcat not installed: .ci/run should have installed it (apt-get install kcat)")
	}
	t.Skip("kcat not installed (apt-get install kcat); CI runs this test")
	return ""
}

// runErr runs a command and returns its combined output and error.
func runErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// proc is a long-running CLI process (a producer or consumer) whose stdout
// the test watches.
type proc struct {
	cmd   *exec.Cmd
	out   *lockedWriter
	stdin io.WriteCloser
	done  chan error
}

// startProc runs a CLI in the background; it is killed when the test ends.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin(t, name), args...)
	p := &proc{cmd: cmd, out: &lockedWriter{w: &bytes.Buffer{}}, done: make(chan error, 1)}
	cmd.Stdout = p.out
	errb := &lockedWriter{w: &bytes.Buffer{}}
	cmd.Stderr = errb
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s %v stdout:\n%s\nstderr:\n%s", name, args, p.output(), errb.w.String())
		}
	})
	return p
}

func (p *proc) output() string {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	return p.out.w.String()
}

// waitFor waits until the process has printed want, allowing 45 s: long
// enough for a failover and a client's metadata refresh.
func (p *proc) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !strings.Contains(p.output(), want) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("process exited (%v) before printing %q", err, want)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for output %q", want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitOutput retries f every 200 ms until it reports success, failing the
// test with f's last output after timeout.
func waitOutput(t *testing.T, what string, timeout time.Duration, f func() (string, bool)) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, ok := f()
		if ok {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last output:\n%s", what, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
