package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlog/mlog/internal/testutil"
)

// The README's first steps: start a broker with no setup, list, produce and
// consume with kcat, stop it with SIGTERM.
func TestKcatEndToEnd(t *testing.T) {
	kc := kcat(t)
	dir := t.TempDir()
	s := startServer(t, nil, "--data-dir", dir)

	meta := run(t, "", kc, "-b", s.addr, "-L")
	if !strings.Contains(meta, "1 brokers:") || !strings.Contains(meta, "broker 1 at "+s.addr) {
		t.Fatalf("kcat -L:\n%s", meta)
	}
	run(t, "hello world\nthis is a test\ndistributed log works!\n", kc, "-b", s.addr, "-P", "-t", "orders")
	got := run(t, "", kc, "-b", s.addr, "-C", "-t", "orders", "-o", "beginning", "-e", "-f", "%o\t%s\n")
	want := "0\thello world\n1\tthis is a test\n2\tdistributed log works!\n"
	if got != want {
		t.Fatalf("kcat -C got:\n%q\nwant:\n%q", got, want)
	}
	meta = run(t, "", kc, "-b", s.addr, "-L", "-t", "orders")
	if !strings.Contains(meta, `topic "orders" with 1 partitions`) {
		t.Fatalf("kcat -L -t orders:\n%s", meta)
	}

	s.stop(t)
	// A clean shutdown left every log marked clean (flag bit in log.checkpoint).
	ck, err := os.ReadFile(filepath.Join(dir, "orders-0", "log.checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ck) != 32 || binary.BigEndian.Uint16(ck[6:8])&1 != 1 {
		t.Fatalf("log.checkpoint after SIGTERM is not marked clean: %x", ck)
	}
	// And everything is there after a restart, once the node has replayed
	// its metadata (until then the topic is "leader not available").
	s = startServer(t, nil, "--data-dir", dir)
	testutil.Eventually(t, "the topic to be led again", func() bool {
		return strings.Contains(run(t, "", kc, "-b", s.addr, "-L", "-t", "orders"), "leader 1,")
	})
	got = run(t, "", kc, "-b", s.addr, "-C", "-t", "orders", "-o", "beginning", "-e", "-f", "%o\t%s\n")
	if got != want {
		t.Fatalf("after restart kcat -C got:\n%q", got)
	}
}

// Every flag has an MLOG_ variable, and the Compose file's form
// `--bootstrap true` is accepted.
func TestEnvVarsAndSeedFlags(t *testing.T) {
	kc := kcat(t)
	// A peer that is not there: the node bootstraps (true) and keeps
	// trying to join in the background.
	s := startServer(t, []string{"MLOG_NODE_ID=node-7", "MLOG_DATA_DIR=" + t.TempDir(), "MLOG_RAFT_VOTERS=3"},
		"--bootstrap", "true", "--peer", fmt.Sprintf("node-2=127.0.0.1:%d", freePort(t)), "--replication-batch-size", "5000")
	var meta string
	testutil.Eventually(t, "the node to elect itself controller", func() bool {
		meta = run(t, "", kc, "-b", s.addr, "-L")
		return strings.Contains(meta, "(controller)")
	})
	if !strings.Contains(meta, "broker 7 at "+s.addr) {
		t.Fatalf("MLOG_NODE_ID=node-7 not applied:\n%s", meta)
	}
	s.stop(t)
}

// `mlog perf` produces and consumes and reports the final line.
func TestPerfCommands(t *testing.T) {
	s := startServer(t, nil, "--data-dir", t.TempDir())
	out := run(t, "", bin(t, "mlog"), "perf", "produce", "--brokers", s.addr, "--topic", "p", "--num-records", "2000", "--record-size", "100", "--acks", "all")
	if !strings.Contains(out, "2000 records sent") || !strings.Contains(out, "MB/sec") || !strings.Contains(out, "99th") ||
		!strings.Contains(out, "compression none") && !strings.Contains(out, "(none;") || !strings.Contains(out, "bytes stored: ") {
		t.Fatalf("perf produce:\n%s", out)
	}
	out = run(t, "", bin(t, "mlog"), "perf", "consume", "--brokers", s.addr, "--topic", "p", "--num-records", "2000")
	if !strings.Contains(out, "data.consumed.in.nMsg") || !strings.Contains(out, ", 2000, ") {
		t.Fatalf("perf consume:\n%s", out)
	}
}

// kcat's balanced consumer (-G) joins a group, reads everything, commits,
// and a second run resumes after what the first committed.
func TestKcatBalancedConsumer(t *testing.T) {
	kc := kcat(t)
	s := startServer(t, nil, "--data-dir", t.TempDir())
	run(t, "a\nb\nc\n", kc, "-b", s.addr, "-P", "-t", "gt")
	got := run(t, "", kc, "-b", s.addr, "-G", "kg", "gt", "-o", "beginning", "-e", "-q", "-f", "%o %s\n")
	if got != "0 a\n1 b\n2 c\n" {
		t.Fatalf("first group run read:\n%q", got)
	}
	run(t, "d\n", kc, "-b", s.addr, "-P", "-t", "gt")
	got = run(t, "", kc, "-b", s.addr, "-G", "kg", "gt", "-e", "-q", "-f", "%o %s\n")
	if got != "3 d\n" {
		t.Fatalf("second group run read:\n%q (want only the new record)", got)
	}
}

// A server whose Kafka port is taken prints that error and exits non-zero,
// without a panic, and leaves nothing listening.
func TestServerBusyPortExitsNonZero(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	raft := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	out, err := runErr(bin(t, "mlog"), "server", "--data-dir", t.TempDir(), "--rpc-port", strconv.Itoa(port),
		"--bind-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--raft-addr", raft, "--http-addr", "")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("exit: %v, want a non-zero status\n%s", err, out)
	}
	if !strings.Contains(out, "address already in use") || !strings.Contains(out, strconv.Itoa(port)) || strings.Contains(out, "panic") {
		t.Fatalf("output does not name the busy port (or panics):\n%s", out)
	}
	// The Raft listener opened before the Kafka one was closed again.
	ln, err := net.Listen("tcp", raft)
	if err != nil {
		t.Fatalf("raft address still held after the failed start: %v", err)
	}
	ln.Close()
}
