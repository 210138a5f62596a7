package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

func TestHelpTexts(t *testing.T) {
	for _, tc := range []struct {
		bin  string
		args []string
		want []string
	}{
		{"mlog", []string{"--help"}, []string{"server", "perf", "MLOG_"}},
		{"server", []string{"--help"}, []string{"--rpc-port", "(default 9094)", "--http-addr", "(default \"auto\")", "127.0.0.1:9644", "--data-dir", "/tmp/mlog", "--node-id", "node-1",
			"--bind-addr", "127.0.0.1:9092", "--raft-addr", "127.0.0.1:9093", "--advertise-addr", "--bootstrap", "--peer",
			"--replication-batch-size", "5000", "--raft-voters", "--fsync", "kcat -b 127.0.0.1:9094 -L"}},
		{"mlog", []string{"perf", "produce", "--help"}, []string{"--topic", "--num-records", "--record-size", "--throughput", "--acks", "--brokers"}},
		{"producer", []string{"connect", "--help"}, []string{"--addrs", "--topic", "--acks", "127.0.0.1:9094", "MLOG_"}},
		{"consumer", []string{"connect", "--help"}, []string{"--addrs", "--topic", "--id", "--from-beginning", "MLOG_"}},
		{"mlog", []string{"producer", "connect", "--help"}, []string{"--acks"}},
		{"mlog", []string{"consumer", "connect", "--help"}, []string{"--from-beginning"}},
		{"topic", []string{"create", "--help"}, []string{"--addrs", "--topic", "--replicas", "--partitions", "--config", "MLOG_"}},
		{"topic", []string{"list", "--help"}, []string{"--addrs", "--internal"}},
		{"topic", []string{"delete", "--help"}, []string{"--addrs", "--topic"}},
		{"mlog", []string{"healthcheck", "--help"}, []string{"--addr", "--timeout"}},
		{"consumer", []string{"connect", "--help"}, []string{"--max-messages"}},
		{"mlog", []string{"perf", "consume", "--help"}, []string{"--topic", "--num-records", "--brokers"}},
	} {
		out, err := exec.Command(bin(t, tc.bin), tc.args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", tc.bin, tc.args, err, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s %v help lacks %q:\n%s", tc.bin, tc.args, w, out)
			}
		}
	}
}

// Bad flags give one clear line and a non-zero exit, never a stack trace.
func TestBadFlagsOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"--fsync", "sometimes"},
		{"--rpc-port", "70000"},
		{"--bind-addr", "nohostport"},
		{"--no-such-flag"},
		{"stray-argument"},
	} {
		cmd := exec.Command(bin(t, "server"), args...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("server %v succeeded", args)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || strings.Contains(string(out), "goroutine") || !strings.HasPrefix(lines[0], "server: ") {
			t.Errorf("server %v printed:\n%s", args, out)
		}
	}
}
