package lossyfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Some tests run this test binary again as a helper process that works in
// the mount (the process serving a mount must not memory-map files in it,
// and a process is what the harness kills). helperEnv names the helper's
// job, helperDirEnv the directory it works in.
const (
	helperEnv    = "LOSSYFS_TEST_HELPER"
	helperDirEnv = "LOSSYFS_TEST_HELPER_DIR"
)

func TestMain(m *testing.M) {
	if job := os.Getenv(helperEnv); job != "" {
		os.Exit(runHelper(job, os.Getenv(helperDirEnv)))
	}
	os.Exit(m.Run())
}

// helperJob returns the job a helper process can do by that name. A job
// works in dir, prints one line to stdout and returns; ready is true for a
// job that must then wait to be killed.
func helperJob(job string) func(dir string) (line string, ready bool, err error) {
	switch job {
	case "writer":
		return writerJob
	case "mmap":
		return mmapJob
	case "storage-write":
		return storageWriteJob
	case "storage-check":
		return storageCheckJob
	}
	return nil
}

func runHelper(job, dir string) int {
	fn := helperJob(job)
	if fn == nil {
		fmt.Fprintf(os.Stderr, "no helper job %q\n", job)
		return 2
	}
	line, ready, err := fn(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", job, err)
		return 1
	}
	fmt.Println(line)
	if ready {
		_, _ = io.Copy(io.Discard, os.Stdin) // until killed
		fmt.Fprintln(os.Stderr, "helper: stdin closed before the kill")
		return 1
	}
	return 0
}

// helperCmd prepares a helper process doing job in dir.
func helperCmd(job, dir string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+job, helperDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// runHelperJob runs a helper to completion and returns its line.
func runHelperJob(t *testing.T, job, dir string) string {
	t.Helper()
	cmd, stderr := helperCmd(job, dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s: %v\nstderr:\n%s", job, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// startHelper starts a helper and returns its line once it printed it: the
// job is done and the helper waits, files still open, to be killed.
func startHelper(t *testing.T, job, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd, stderr := helperCmd(job, dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", job, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		_ = stdin.Close()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Wait()
		t.Fatalf("helper %s: %v\nstderr:\n%s", job, err, stderr)
	}
	return cmd, strings.TrimSpace(line)
}

// killHelper kills the helper with SIGKILL, as a power cut would, and
// reaps it.
func killHelper(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill helper: %v", err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper did not die of SIGKILL: %v", err)
	}
}

// fuseUnavailable says why FUSE cannot be mounted here, or "".
func fuseUnavailable() string {
	if os.Geteuid() != 0 {
		return "lossyfs tests mount FUSE with mount(2): they need root"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "lossyfs tests need /dev/fuse: " + err.Error()
	}
	return ""
}

// mountForTest mounts a lossy filesystem over a fresh backing directory.
// It skips where FUSE is unavailable, except in CI (CI set), which runs as
// root with /dev/fuse and where a skip would hide a broken test.
func mountForTest(t *testing.T) (f *FS, backing, mnt string) {
	t.Helper()
	if reason := fuseUnavailable(); reason != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the lossyfs tests: %s", reason)
		}
		t.Skip(reason)
	}
	backing, mnt = t.TempDir(), t.TempDir()
	f, err := Mount(backing, mnt, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return f, backing, mnt
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}
