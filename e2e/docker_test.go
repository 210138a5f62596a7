package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The Docker Compose cluster (infra/), run when a Docker engine
// answers: up, a 3-replica topic, acks=all records, `docker kill` of the
// leader's container, produce again, consume everything from another node,
// down. The tools run inside the containers, where node1..3 resolve.
func TestDockerComposeCluster(t *testing.T) {
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Skipf("skipped: no Docker engine answers (docker info: %v: %.200s)", err, out)
	}
	compose := []string{"docker", "compose"}
	if exec.Command("docker", "compose", "version").Run() != nil {
		compose = []string{"docker-compose"}
	}
	for _, port := range []string{"9092", "9093", "9094", "9095", "9096", "9097", "9098", "9099", "9100", "9644", "9645", "9646"} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Skipf("skipped: port %s is taken (a cluster already running?); the Compose file publishes 9092-9100 and 9644-9646", port)
		}
		ln.Close()
	}
	build := exec.Command("go", "build", "-o", "../bin/mlog", "../cmd/mlog")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dc := func(args ...string) (string, error) {
		a := append(append(compose[1:], "-p", "mlog-e2e", "-f", "../infra/docker-compose.yml"), args...)
		out, err := exec.Command(compose[0], a...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := dc("logs", "--no-color", "--tail", "60")
			t.Logf("cluster logs:\n%s", out)
		}
		if out, err := dc("down", "-v"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	if out, err := dc("up", "-d", "--build"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}

	// in runs the mlog binary inside a node's container.
	in := func(node, stdin string, args ...string) (string, error) {
		cmd := exec.Command("docker", append([]string{"exec", "-i", "mlog-" + node, "/mlog"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	waitOutput(t, "the topic to be created", 90*time.Second, func() (string, bool) {
		out, err := in("node2", "", "topic", "create", "--addrs", "node2:9097", "--topic", "orders", "--replicas", "3", "--timeout", "5s")
		return out, err == nil || strings.Contains(out, "already exists")
	})
	list := waitOutput(t, "three replicas in sync", 90*time.Second, func() (string, bool) {
		out, _ := in("node2", "", "topic", "list", "--addrs", "node2:9097")
		return out, strings.Count(out, "isr=true") == 2
	})
	// Each node's HTTP port (9644-9646 on the host): ready, with metrics.
	for _, port := range []string{"9644", "9645", "9646"} {
		waitOutput(t, "node on "+port+" ready", 90*time.Second, func() (string, bool) {
			resp, err := http.Get("http://127.0.0.1:" + port + "/readyz")
			if err != nil {
				return err.Error(), false
			}
			resp.Body.Close()
			return resp.Status, resp.StatusCode == http.StatusOK
		})
	}
	m := leaderRE.FindStringSubmatch(list)
	if m == nil {
		t.Fatalf("topic list: %s", list)
	}
	leader := "node" + m[1]
	others := []string{}
	for _, n := range []string{"node1", "node2", "node3"} {
		if n != leader {
			others = append(others, n)
		}
	}
	addrOf := map[string]string{"node1": "node1:9094", "node2": "node2:9097", "node3": "node3:9100"}

	out, err := in(others[0], "hello world\nthis is a test\ndistributed log works!\n",
		"producer", "connect", "--addrs", addrOf[others[0]], "--topic", "orders", "--acks", "2")
	if err != nil || !strings.Contains(out, "offset=0\noffset=1\noffset=2\n") {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	if out, err := exec.Command("docker", "kill", "mlog-"+leader).CombinedOutput(); err != nil {
		t.Fatalf("docker kill: %v\n%s", err, out)
	}
	out, err = in(others[0], "after failover\n", "producer", "connect", "--addrs",
		addrOf[others[0]]+","+addrOf[others[1]], "--topic", "orders", "--acks", "2")
	if err != nil || !strings.Contains(out, "offset=3\n") {
		t.Fatalf("produce after the kill: %v\n%s", err, out)
	}
	out, err = in(others[1], "", "consumer", "connect", "--addrs", addrOf[others[1]], "--topic", "orders",
		"--from-beginning", "--max-messages", "4")
	httpPort := map[string]string{"node1": "9644", "node2": "9645", "node3": "9646"}
	waitOutput(t, others[0]+"'s /metrics to show the high watermark 4", 90*time.Second, func() (string, bool) {
		resp, err := http.Get("http://127.0.0.1:" + httpPort[others[0]] + "/metrics")
		if err != nil {
			return err.Error(), false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(body), strings.Contains(string(body), `mlog_partition_high_watermark{partition="0",topic="orders"} 4`)
	})
	want := "0\thello world\n1\tthis is a test\n2\tdistributed log works!\n3\tafter failover\n"
	if err != nil || !strings.Contains(out, want) {
		t.Fatalf("consume from %s: %v\n%s", others[1], err, out)
	}
}
