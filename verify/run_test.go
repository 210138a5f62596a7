package verify_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/verify"
)

// The tests here run verify against real mlog brokers started in process
// by brokertest: the path `mlog server` runs.

// freeTCP is an address nothing listens on (for a moment).
func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testLogger sends a run's logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func report(t *testing.T, r *verify.Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// runHealthy runs verify, configured by set, against a healthy three-node
// cluster and fails on any violation.
func runHealthy(t *testing.T, set func(*verify.Config)) *verify.Report {
	t.Helper()
	c := brokertest.Start(t, 3)
	cfg := verify.DefaultConfig()
	cfg.Seeds = c.Seeds()
	cfg.FinalReadTimeout = 30 * time.Second
	cfg.DrainTimeout = 10 * time.Second
	cfg.Logger = testLogger(t)
	set(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := verify.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := report(t, r)
	t.Log("\n" + text)
	if !r.OK() {
		t.Fatalf("violations on a healthy cluster:\n%s", text)
	}
	return r
}

func TestRunCleanOnThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	r := runHealthy(t, func(cfg *verify.Config) {
		cfg.Topic, cfg.Duration, cfg.Rate = "verify-clean", 5*time.Second, 400
	})
	if r.Acknowledged == 0 || r.Acknowledged+r.Failed+r.Unknown != r.Attempted {
		t.Fatalf("acknowledged %d of %d attempted (%d failed, %d unknown)", r.Acknowledged, r.Attempted, r.Failed, r.Unknown)
	}
	final := 0
	for _, n := range r.FinalRecords {
		final += n
	}
	if len(r.FinalRecords) != 3 || final < r.Acknowledged {
		t.Errorf("final records %v (total %d) for %d acknowledged", r.FinalRecords, final, r.Acknowledged)
	}
	for _, name := range []string{"consumer-0", "group-consumer-0"} {
		if r.Consumed[name] == 0 {
			t.Errorf("%s consumed nothing: %v", name, r.Consumed)
		}
	}
	// mlog may or may not serve follower reads (KIP-392); when it does,
	// every replica of every partition was read and compared.
	switch r.ReplicaCheck {
	case "done":
		if r.ReplicasCompared != 9 || r.OffsetsCompared < int64(r.Acknowledged) {
			t.Errorf("%d replica logs compared at %d offsets; want 3 partitions x 3 replicas, at least the %d acknowledged",
				r.ReplicasCompared, r.OffsetsCompared, r.Acknowledged)
		}
	case "skipped: follower reads not served":
	default:
		t.Errorf("replica check = %q", r.ReplicaCheck)
	}
}

// TestRunDetectsLoss proves the whole path finds a real loss: records
// acknowledged by a one-node cluster are deleted with their topic, which is
// recreated empty, between the workload and the final read.
func TestRunDetectsLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	c := brokertest.Start(t, 1)
	seeds, adm := c.Seeds(), c.Admin()

	cfg := verify.DefaultConfig()
	cfg.Seeds = seeds
	cfg.Topic = "verify-loss"
	cfg.Partitions = 2
	cfg.ReplicationFactor = 1
	cfg.MinInsyncReplicas = 1
	cfg.Acks = verify.AcksLeader
	cfg.Idempotent = false
	cfg.Duration = 2 * time.Second
	cfg.Rate = 200
	cfg.FinalReadTimeout = 20 * time.Second
	cfg.Logger = testLogger(t)
	cfg.AfterWorkload = func(ctx context.Context) error {
		if _, err := adm.DeleteTopic(ctx, cfg.Topic); err != nil {
			return err
		}
		var last error
		testutil.Eventually(t, "the topic to be recreated empty", func() bool {
			res, err := adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor, nil, cfg.Topic)
			if err == nil {
				err = res.Err
			}
			last = err
			return err == nil
		})
		return last
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := verify.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := report(t, r)
	t.Log("\n" + text)
	if r.Acknowledged == 0 {
		t.Fatalf("nothing acknowledged:\n%s", text)
	}
	if r.Lost != r.Acknowledged || r.OK() {
		t.Fatalf("lost %d of %d acknowledged, want all:\n%s", r.Lost, r.Acknowledged, text)
	}
	if r.Vanished == 0 {
		t.Errorf("consumers saw records that are gone, but vanished = 0:\n%s", text)
	}
	if len(r.Examples[verify.KindLost]) == 0 || !strings.Contains(r.Examples[verify.KindLost][0], "is not in the final read") {
		t.Errorf("lost examples = %q", r.Examples[verify.KindLost])
	}
}

func TestRunUnreachableCluster(t *testing.T) {
	cfg := verify.DefaultConfig()
	cfg.Seeds = []string{freeTCP(t)} // nothing listens there
	_, err := verify.Run(context.Background(), cfg)
	if !errors.Is(err, verify.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for name, mutate := range map[string]func(*verify.Config){
		"no seeds":          func(c *verify.Config) { c.Seeds = nil },
		"no topic":          func(c *verify.Config) { c.Topic = "" },
		"zero partitions":   func(c *verify.Config) { c.Partitions = 0 },
		"isr above rf":      func(c *verify.Config) { c.ReplicationFactor = 1; c.MinInsyncReplicas = 2 },
		"idempotent acks 1": func(c *verify.Config) { c.Acks = verify.AcksLeader },
		"bad acks":          func(c *verify.Config) { c.Acks = "2" },
		"no duration":       func(c *verify.Config) { c.Duration = 0 },
		"negative rate":     func(c *verify.Config) { c.Rate = -1 },
		"no producers":      func(c *verify.Config) { c.Producers = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := verify.DefaultConfig()
			mutate(&cfg)
			if _, err := verify.Run(context.Background(), cfg); !errors.Is(err, verify.ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestRunSurvivesLeaderKill uses verify as a fault harness does: once
// partition 0 holds records, its leader is killed while the producers run,
// and AfterWorkload restarts it before the final read. With acks=all,
// idempotence, replication factor 3 and min.insync.replicas 2, nothing
// acknowledged may be lost, and the restarted replica must agree with the
// others.
func TestRunSurvivesLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := brokertest.Start(t, 3)
	seeds := c.Seeds() // all three, the killed one included
	adm := c.Admin()

	cfg := verify.DefaultConfig()
	cfg.Seeds = seeds
	cfg.Topic = "verify-kill"
	cfg.Duration = 6 * time.Second
	cfg.Rate = 300
	cfg.FinalReadTimeout = 45 * time.Second
	cfg.Logger = testLogger(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	faultCtx, stopFault := context.WithCancel(ctx)
	defer stopFault()
	killed := make(chan int, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		// Wait on progress, not on time: kill once partition 0 holds 100
		// records, so the kill lands while producers run.
		for faultCtx.Err() == nil {
			ends, err := adm.ListEndOffsets(faultCtx, cfg.Topic)
			if o, ok := ends.Lookup(cfg.Topic, 0); err == nil && ok && o.Err == nil && o.Offset >= 100 {
				md, err := adm.Metadata(faultCtx, cfg.Topic)
				if p, ok := md.Topics[cfg.Topic].Partitions[0]; err == nil && ok && c.Index(p.Leader) >= 0 {
					i := c.Index(p.Leader)
					c.Kill(i)
					killed <- i
					return
				}
			}
			select {
			case <-faultCtx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	cfg.AfterWorkload = func(context.Context) error {
		stopFault()
		wg.Wait()
		select {
		case i := <-killed:
			t.Logf("restarting broker %d, killed during the workload", i+1)
			c.StartNode(i)
			c.WaitBrokers(3)
			return nil
		default:
			return errors.New("no leader was killed during the workload")
		}
	}
	r, err := verify.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := report(t, r)
	t.Log("\n" + text)
	if !r.OK() || r.Acknowledged == 0 {
		t.Fatalf("acks=all lost or reordered records across a leader kill:\n%s", text)
	}
	// The restarted broker caught up and was compared with the others
	// over the whole log (when the cluster serves follower reads).
	if r.ReplicaCheck == "done" && (r.ReplicasCompared != 9 || r.OffsetsCompared < int64(r.Acknowledged)) {
		t.Errorf("%d replica logs compared at %d offsets; want 9, at least %d", r.ReplicasCompared, r.OffsetsCompared, r.Acknowledged)
	}
}

// A transactional run on a healthy three-node cluster: a tenth of the
// transactions are aborted, none of their records is visible to the
// read_committed consumers and final read, and every committed record is
// there.
func TestRunTransactionalOnThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	r := runHealthy(t, func(cfg *verify.Config) {
		cfg.Topic, cfg.Transactional, cfg.Duration, cfg.Rate = "verify-txn", true, 4*time.Second, 300
	})
	if r.Acknowledged == 0 || r.Aborted == 0 {
		t.Fatalf("acknowledged %d, aborted %d: want both (a tenth of the transactions abort)", r.Acknowledged, r.Aborted)
	}
	final := 0
	for _, n := range r.FinalRecords {
		final += n
	}
	if final != r.Acknowledged+r.Unknown && final != r.Acknowledged {
		t.Errorf("final read holds %d records for %d committed (%d undecided)", final, r.Acknowledged, r.Unknown)
	}
}
