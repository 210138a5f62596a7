package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tutorial's walkthrough (steps 4-8) as a new user types it, on
// the default ports: make local-cluster-start, make create-topic, make
// list-topics, the stdin producer, a consumer on another node, resume by
// --id, kill -9 of the leader and produce again, make local-cluster-stop,
// which leaves no process behind.
func TestSeedWalkthroughLocalCluster(t *testing.T) {
	for _, port := range []string{"9092", "9093", "9094", "9095", "9096", "9097", "9098", "9099", "9100", "9644", "9645", "9646"} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Skipf("skipped: port %s is taken (a cluster already running?); the walkthrough uses the default ports", port)
		}
		ln.Close()
	}
	dir := t.TempDir()
	env := append(os.Environ(), "MLOG_LOCAL_DIR="+dir)
	mk := func(args ...string) (string, error) {
		cmd := exec.Command("make", append([]string{"-s", "-C", ".."}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := mk("local-cluster-stop"); err != nil {
			t.Logf("local-cluster-stop: %v\n%s", err, out)
		}
		if t.Failed() {
			for n := 1; n <= 3; n++ {
				b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.log", n)))
				t.Logf("node%d.log (tail):\n%s", n, tail(string(b), 3000))
			}
		}
	})
	if out, err := mk("build"); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	if out, err := mk("local-cluster-start"); err != nil {
		t.Fatalf("make local-cluster-start: %v\n%s", err, out)
	}
	waitOutput(t, "make create-topic", 60*time.Second, func() (string, bool) {
		out, err := mk("create-topic", "topic=orders", "replicas=3")
		return out, err == nil
	})
	listRE := regexp.MustCompile(`topic=orders leader=node-(\d) epoch=\d+ replicas=node-\d\(isr=true,leo=0\),node-\d\(isr=true,leo=0\)\n`)
	list := waitOutput(t, "make list-topics in the documented format", 60*time.Second, func() (string, bool) {
		out, _ := mk("list-topics")
		return out, listRE.MatchString(out)
	})
	leader, _ := strconv.Atoi(listRE.FindStringSubmatch(list)[1])
	bin := func(name string) string { return filepath.Join("..", "bin", name) }

	out := run(t, "hello world\nthis is a test\ndistributed log works!\n", bin("producer"), "connect", "--addrs", "127.0.0.1:9094", "--topic", "orders")
	if !strings.Contains(out, `connected to topic "orders" leader at 127.0.0.1:`) ||
		!strings.Contains(out, "enter messages, each line will be produced to the topic (Ctrl-D to exit)\n") ||
		!strings.Contains(out, "offset=0\noffset=1\noffset=2\n") {
		t.Fatalf("producer:\n%s", out)
	}
	out = run(t, "", bin("consumer"), "connect", "--addrs", "127.0.0.1:9097", "--topic", "orders", "--id", "my-consumer",
		"--from-beginning", "--max-messages", "3")
	if !strings.Contains(out, "Starting from beginning (offset 0)\n0\thello world\n1\tthis is a test\n2\tdistributed log works!\n") {
		t.Fatalf("consumer from node 2:\n%s", out)
	}
	run(t, "one more\n", bin("producer"), "connect", "--addrs", "127.0.0.1:9094", "--topic", "orders", "--acks", "2")
	out = run(t, "", bin("consumer"), "connect", "--addrs", "127.0.0.1:9100", "--topic", "orders", "--id", "my-consumer", "--max-messages", "1")
	if !strings.Contains(out, "Resuming from offset 3 (last committed)\n3\tone more\n") {
		t.Fatalf("resumed consumer on node 3:\n%s", out)
	}

	// Kill the leader; produce through the others.
	pidb, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.pid", leader)))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var others []string
	for n, port := range map[int]string{1: "9094", 2: "9097", 3: "9100"} {
		if n != leader {
			others = append(others, "127.0.0.1:"+port)
		}
	}
	out = run(t, "after failover\n", bin("producer"), "connect", "--addrs", strings.Join(others, ","), "--topic", "orders")
	if !strings.Contains(out, "offset=4\n") {
		t.Fatalf("producer after the kill:\n%s", out)
	}

	// The stop script stops what is left and leaves no process.
	var pids []int
	for n := 1; n <= 3; n++ {
		if b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.pid", n))); err == nil {
			p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			pids = append(pids, p)
		}
	}
	if out, err := mk("local-cluster-stop"); err != nil {
		t.Fatalf("make local-cluster-stop: %v\n%s", err, out)
	}
	for _, p := range pids {
		if syscall.Kill(p, 0) == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); !strings.Contains(string(b), ") Z ") {
				t.Fatalf("pid %d still running after local-cluster-stop", p)
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
