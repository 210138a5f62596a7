package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker/brokertest"
)

// runCLI runs `mlog <args>` in process as Execute would, returning its
// output and error.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := Root()
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetArgs(joinBoolValues(args, boolFlagNames(root)))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// expectOneLineError runs the CLI with bad args: it must fail with one
// line that mentions want, and print nothing on stdout.
func expectOneLineError(t *testing.T, args []string, want string) {
	t.Helper()
	stdout, _, err := runCLI(t, args...)
	if err == nil {
		t.Fatalf("no error; stdout %q", stdout)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, want) {
		t.Fatalf("error %q: want one line mentioning %q", msg, want)
	}
	if stdout != "" {
		t.Errorf("stdout %q on a bad flag", stdout)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestVerifyBadFlagsFailWithOneLine(t *testing.T) {
	closed := freeAddr(t) // nothing listens there
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--partitions", "0"}, "partitions 0"},
		{[]string{"--replication-factor", "0"}, "replication factor 0"},
		{[]string{"--acks", "2"}, `--acks "2"`},
		{[]string{"--rate", "-5"}, "rate -5"},
		{[]string{"--rate", "fast"}, `invalid argument "fast" for "--rate"`},
		{[]string{"--duration", "0s"}, "duration 0s"},
		{[]string{"--producers", "0"}, "no producers"},
		{[]string{"--acks", "1", "--idempotent", "true"}, "idempotent producer needs acks all"},
		{[]string{"--replication-factor", "1", "--min-insync-replicas", "2"}, "min.insync.replicas 2"},
		{[]string{"--record-size", "-1"}, "record size -1"},
		{[]string{"--addrs", ""}, "empty seed broker address"},
		{[]string{"--topic", ""}, "topic is empty"},
		{[]string{"--final-read-timeout", "0s"}, "final read timeout"},
		{[]string{"stray"}, `unknown command "stray"`},
		{[]string{"--addrs", closed, "--duration", "1s"}, "cluster unreachable at " + closed},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			expectOneLineError(t, append([]string{"verify"}, tc.args...), tc.want)
		})
	}
}

func TestVerifyFlagsFromEnvironment(t *testing.T) {
	t.Setenv("MLOG_ACKS", "7")
	_, _, err := runCLI(t, "verify")
	if err == nil || !strings.Contains(err.Error(), `--acks "7"`) {
		t.Fatalf("err = %v, want MLOG_ACKS to reach --acks", err)
	}
}

// TestVerifyHelperProcess is `mlog` run as a child process by the exit
// status tests.
func TestVerifyHelperProcess(t *testing.T) {
	if os.Getenv("MLOG_VERIFY_HELPER") != "1" {
		t.Skip("helper process")
	}
	i := 0
	for i < len(os.Args) && os.Args[i] != "--" {
		i++
	}
	os.Args = append([]string{"mlog"}, os.Args[i+1:]...)
	Execute(Root())
	os.Exit(0)
}

// mlogProcess runs `mlog <args>` in a child process and returns its
// output and exit status.
func mlogProcess(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestVerifyHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "MLOG_VERIFY_HELPER=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func TestVerifyBadFlagExitStatus(t *testing.T) {
	stdout, stderr, code := mlogProcess(t, "verify", "--partitions", "-1")
	if code != 1 {
		t.Fatalf("exit status %d, want 1 (stderr %q)", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "mlog: ") || !strings.Contains(lines[0], "partitions -1") {
		t.Errorf("stderr %q: want one line naming the flag", stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q", stdout)
	}
}

func TestVerifyCommandJSONOnOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	addr := brokertest.Start(t, 1).Seeds()[0]
	stdout, stderr, err := runCLI(t, "verify", "--addrs", addr, "--topic", "cli-verify", "--replication-factor", "1",
		"--partitions", "2", "--duration", "2s", "--rate", "200", "--json")
	if err != nil {
		t.Fatalf("verify: %v\nstdout %s\nstderr %s", err, stdout, stderr)
	}
	var got struct {
		OK           bool                `json:"ok"`
		Attempted    int                 `json:"attempted"`
		Acknowledged int                 `json:"acknowledged"`
		Lost         *int                `json:"lost"`
		ReplicaCheck string              `json:"replica_check"`
		Examples     map[string][]string `json:"examples"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	if !got.OK || got.Acknowledged == 0 || got.Attempted < got.Acknowledged || got.Lost == nil || *got.Lost != 0 || got.Examples == nil {
		t.Fatalf("report %s", stdout)
	}
	if got.ReplicaCheck == "" {
		t.Errorf("no replica_check in %s", stdout)
	}
	// Check only, on what the first run left: the same verdict, nothing
	// produced.
	stdout, _, err = runCLI(t, "verify", "--addrs", addr, "--topic", "cli-verify", "--check-only", "--final-read-timeout", "20s")
	if err != nil {
		t.Fatalf("check only: %v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "OK: no violations") || !strings.Contains(stdout, "attempted:          0") {
		t.Errorf("check-only summary:\n%s", stdout)
	}

	// A topic holding one of verify's values twice: check only finds the
	// duplicate, prints the summary and fails.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("cli-dup"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 2 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("old-p0-7-padding")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	stdout, _, err = runCLI(t, "verify", "--addrs", addr, "--topic", "cli-dup", "--check-only")
	if err == nil || err.Error() != "verify cli-dup: 1 violations" {
		t.Fatalf("err = %v, want 1 violation\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "duplicated:         1") || !strings.Contains(stdout, "old-p0-7 is in the final read 2 times") {
		t.Errorf("summary:\n%s", stdout)
	}
}

// TestVerifyHelpListsTheFlagContract pins the flag names scripts and the
// docs rely on.
func TestVerifyHelpListsTheFlagContract(t *testing.T) {
	stdout, _, err := runCLI(t, "verify", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--addrs", "--topic", "--partitions", "--replication-factor", "--min-insync-replicas",
		"--producers", "--consumers", "--group-consumers", "--acks", "--idempotent", "--duration", "--rate",
		"--record-size", "--seed", "--final-read-timeout", "--json", "--check-only", "MLOG_"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("verify --help lacks %s:\n%s", flag, stdout)
		}
	}
	root := Root()
	found := false
	for _, c := range root.Commands() {
		found = found || c.Name() == "verify"
	}
	if !found {
		t.Error("mlog has no verify command")
	}
}
