//go:build linux

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mlog/mlog/verify"
)

// Workload is `mlog verify` running as its own process against the
// cluster: producers and consumers for Duration, then a final read that
// retries while the cluster recovers, then the checks.
type Workload struct {
	Topic             string
	Partitions        int
	ReplicationFactor int
	MinInsyncReplicas int
	Acks              string // "all" or "1"
	Producers         int
	Duration          time.Duration
	Rate              int
	Seed              uint64
	// FinalReadTimeout bounds verify's final read, which retries while the
	// cluster recovers; zero keeps verify's default.
	FinalReadTimeout time.Duration
	// Args are extra verify flags.
	Args []string
}

// Report is verify's --json output, decoded into verify's own type.
type Report = verify.Report

// Running is a started workload.
type Running struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// args are the verify flags for addrs.
func (w Workload) args(addrs []string) []string {
	a := []string{"verify", "--addrs", strings.Join(addrs, ","), "--topic", w.Topic,
		"--partitions", strconv.Itoa(w.Partitions), "--replication-factor", strconv.Itoa(w.ReplicationFactor),
		"--min-insync-replicas", strconv.Itoa(w.MinInsyncReplicas), "--acks", w.Acks,
		"--producers", strconv.Itoa(w.Producers), "--duration", w.Duration.String(),
		"--rate", strconv.Itoa(w.Rate), "--seed", strconv.FormatUint(w.Seed, 10), "--json"}
	if w.FinalReadTimeout > 0 {
		a = append(a, "--final-read-timeout", w.FinalReadTimeout.String())
	}
	return append(a, w.Args...)
}

// StartWorkload runs verify in the background from the root namespace.
// ctx bounds the whole run (workload, final read and checks).
func StartWorkload(ctx context.Context, bin string, addrs []string, w Workload) (*Running, error) {
	r := &Running{done: make(chan struct{})}
	r.cmd = exec.CommandContext(ctx, bin, w.args(addrs)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.WaitDelay = 5 * time.Second
	if err := startChild(r.cmd); err != nil {
		return nil, fmt.Errorf("chaos: start verify: %w", err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	return r, nil
}

// Done is closed when verify has exited.
func (r *Running) Done() <-chan struct{} { return r.done }

// Wait waits for verify and parses its report. Exit status 1 with a report
// is a run with violations, not an error.
func (r *Running) Wait() (*Report, error) {
	<-r.done
	var rep Report
	out := bytes.TrimSpace(r.stdout.Bytes())
	// The JSON object is the last line; anything before it is progress.
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("chaos: verify (%v) printed no report: %w\nstdout: %s\nstderr: %s",
			r.err, err, r.stdout.String(), lastLines(r.stderr.String(), 30))
	}
	var exit *exec.ExitError
	if r.err != nil && !(errors.As(r.err, &exit) && exit.ExitCode() == 1) {
		return &rep, fmt.Errorf("chaos: verify: %w\nstderr: %s", r.err, lastLines(r.stderr.String(), 30))
	}
	return &rep, nil
}

// Stderr is what verify logged.
func (r *Running) Stderr() string { return r.stderr.String() }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
