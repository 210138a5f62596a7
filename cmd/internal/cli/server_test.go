package cli

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/internal/testutil"
)

// serverRun is one `mlog server` run in this process, stopped by cancel.
type serverRun struct {
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, args ...string) *serverRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &serverRun{cancel: cancel, done: make(chan error, 1)}
	root := Root()
	root.SilenceUsage, root.SilenceErrors = true, true
	root.SetArgs(append([]string{"server", "--log-level", "warn"}, args...))
	go func() { r.done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the run and returns its error.
func (r *serverRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop within 30 s")
		return nil
	}
}

// ports returns n distinct free loopback ports.
func ports(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

func hold(t *testing.T, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

// A listener whose address is taken stops the server with that error
// (no panic, nothing left running), whichever listener it is.
func TestServerBusyPortFails(t *testing.T) {
	for i, name := range []string{"kafka", "serf", "raft", "http"} {
		t.Run(name, func(t *testing.T) {
			p := ports(t, 4)
			hold(t, p[i])
			r := startServer(t, "--data-dir", t.TempDir(), "--rpc-port", strconv.Itoa(p[0]),
				"--bind-addr", fmt.Sprintf("127.0.0.1:%d", p[1]), "--raft-addr", fmt.Sprintf("127.0.0.1:%d", p[2]),
				"--http-addr", fmt.Sprintf("127.0.0.1:%d", p[3]))
			var err error
			select {
			case err = <-r.done:
				close(r.done)
			case <-time.After(30 * time.Second):
				t.Fatalf("server with a busy %s port still running after 30 s", name)
			}
			if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), strconv.Itoa(p[i])) {
				t.Fatalf("error = %v, want the %s port %d in use", err, name, p[i])
			}
		})
	}
}

// Three nodes on one host started with only the flags a local cluster
// needs (no --http-addr) all run: each HTTP listener's default port
// follows its Kafka port, and one that is taken is skipped, not fatal.
func TestThreeNodesOnOneHostWithDefaultHTTP(t *testing.T) {
	p := ports(t, 9)
	hold(t, p[2]+httpPortOffset) // node 1's derived HTTP port is taken
	serf := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", p[3*i]) }
	var runs []*serverRun
	var seeds []string
	for i := range 3 {
		args := []string{"--node-id", fmt.Sprintf("node-%d", i+1), "--data-dir", t.TempDir(),
			"--bind-addr", serf(i), "--raft-addr", fmt.Sprintf("127.0.0.1:%d", p[3*i+1]), "--rpc-port", strconv.Itoa(p[3*i+2])}
		if i == 0 {
			args = append(args, "--bootstrap")
		}
		for j := range 3 {
			if j != i {
				args = append(args, "--peer", fmt.Sprintf("node-%d=%s", j+1, serf(j)))
			}
		}
		runs = append(runs, startServer(t, args...))
		seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", p[3*i+2]))
	}
	// Each node, asked on its own (a fresh client: kgo caches metadata),
	// lists all three and names the same controller.
	testutil.Eventually(t, "every node to list three brokers and one controller", func() bool {
		for i, r := range runs {
			select {
			case err := <-r.done:
				close(r.done)
				t.Fatalf("node %d exited: %v", i+1, err)
			default:
			}
		}
		ctrl := int32(-1)
		for _, seed := range seeds {
			cl, err := kgo.NewClient(kgo.SeedBrokers(seed))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			m, err := kadm.NewClient(cl).BrokerMetadata(ctx)
			cancel()
			cl.Close()
			if err != nil || len(m.Brokers) != 3 || m.Controller < 1 || (ctrl >= 0 && m.Controller != ctrl) {
				return false
			}
			ctrl = m.Controller
		}
		return true
	})
	var wg sync.WaitGroup
	for i, r := range runs {
		select {
		case err := <-r.done:
			t.Fatalf("node %d exited: %v", i+1, err)
		default:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.stop(t); err != nil {
				t.Errorf("node %d: %v", i+1, err)
			}
		}()
	}
	wg.Wait()
}

// The --tls-* flags (and their MLOG_ variables) refuse what makes no TLS
// configuration before anything starts.
func TestServerTLSFlagErrors(t *testing.T) {
	ca := testutil.NewCA(t, "cli")
	cert, key := ca.Issue("node-1")
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--tls-cert-file", cert}, want: "certificate and its key"},
		{args: []string{"--tls-client-ca-file", ca.File}, want: "need --tls-cert-file"},
		{args: []string{"--http-tls"}, want: "--http-tls needs --tls-cert-file"},
		{args: []string{"--tls-cert-file", cert, "--tls-key-file", cert}, want: "key"},
		{args: []string{"--tls-cert-file", cert, "--tls-key-file", key, "--tls-client-ca-file", key}, want: "no PEM certificate"},
		{env: map[string]string{"MLOG_TLS_CERT_FILE": cert, "MLOG_TLS_KEY_FILE": "/nonexistent.pem"}, want: "nonexistent"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		root := Root()
		root.SilenceUsage, root.SilenceErrors = true, true
		root.SetArgs(append([]string{"server", "--data-dir", t.TempDir(), "--log-level", "error"}, tc.args...))
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want an error about %q", tc.args, tc.env, err, tc.want)
		}
		for k := range tc.env {
			t.Setenv(k, "")
		}
	}
}

// The --listeners family and the security flags refuse what makes no
// working broker before anything starts, each with a line saying why.
func TestServerListenerAndAuthFlagErrors(t *testing.T) {
	ca := testutil.NewCA(t, "cli-listeners")
	cert, key := ca.Issue("node-1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listeners", "127.0.0.1:9094"}, "want NAME://host:port"},
		{[]string{"--listeners", "PLAINTEXT://localhost"}, "want NAME://host:port"},
		{[]string{"--listeners", "PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"}, "named twice"},
		{[]string{"--listeners", "INTERNAL://127.0.0.1:0"}, "no security protocol"},
		{[]string{"--listeners", "INTERNAL://127.0.0.1:0", "--listener-security-protocol-map", "INTERNAL:GOPHER"}, "no security protocol"},
		{[]string{"--listeners", "SSL://127.0.0.1:0"}, "no TLS certificate"},
		{[]string{"--listeners", "SASL_PLAINTEXT://127.0.0.1:0"}, "no SASL mechanisms"},
		{[]string{"--listeners", "PLAINTEXT://127.0.0.1:0", "--advertised-listeners", "SSL://h:1"}, "which --listeners does not"},
		{[]string{"--listeners", "PLAINTEXT://127.0.0.1:0", "--inter-broker-listener-name", "SSL"}, "not among --listeners"},
		{[]string{"--advertised-listeners", "PLAINTEXT://h:1"}, "need --listeners"},
		{[]string{"--authorizer", "maybe"}, "authorizer"},
		{[]string{"--super-users", "alice"}, "want User:NAME"},
		{[]string{"--authorizer", "acl"}, "brokers must authenticate"},
		{[]string{"--tls-cert-file", cert, "--tls-key-file", key, "--tls-client-ca-file", ca.File}, "super user"},
		{[]string{"--listeners", "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0", "--sasl-mechanisms", "PLAIN",
			"--bootstrap-user", "a:b"}, "brokers must authenticate"},
	} {
		root := Root()
		root.SilenceUsage, root.SilenceErrors = true, true
		root.SetArgs(append([]string{"server", "--data-dir", t.TempDir(), "--log-level", "error"}, tc.args...))
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error about %q", tc.args, err, tc.want)
		}
	}
}
