package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrUnreachable means no seed broker answered.
var ErrUnreachable = errors.New("verify: cluster unreachable")

// setupTimeout bounds reaching the cluster and getting the topic ready.
const setupTimeout = 30 * time.Second

// Run runs the workload cfg describes against the cluster, reads the topic
// back and checks what it read. A returned error means the run could not
// happen (bad config, unreachable cluster, no topic); violations are in the
// Report, whose OK says whether there are any.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RunID == "" {
		cfg.RunID = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	base := []kgo.Opt{kgo.SeedBrokers(cfg.Seeds...), kgo.MetadataMinAge(250 * time.Millisecond)}
	if cfg.TLS != nil {
		base = append(base, kgo.DialTLSConfig(cfg.TLS))
	}
	if cfg.SASL != nil {
		base = append(base, kgo.SASL(cfg.SASL))
	}
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, fmt.Errorf("verify: client for %s: %w", strings.Join(cfg.Seeds, ","), err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	setupCtx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if err := cl.Ping(setupCtx); err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, strings.Join(cfg.Seeds, ","), err)
	}
	partitions, err := ensureTopic(setupCtx, &cfg, adm)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("verify: topic ready", "topic", cfg.Topic, "partitions", partitions, "run", cfg.RunID)

	// Consumers and the final read see what read_committed readers see
	// when the producers are transactional; the replica comparison reads
	// every record.
	readBase := base
	if cfg.Transactional {
		readBase = append(slices.Clone(base), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	h := &History{}
	if !cfg.CheckOnly {
		if err := workload(ctx, &cfg, adm, base, readBase, partitions, h); err != nil {
			return nil, err
		}
	}
	if cfg.AfterWorkload != nil {
		if err := cfg.AfterWorkload(ctx); err != nil {
			return nil, fmt.Errorf("verify: after the workload: %w", err)
		}
	}

	readCtx, cancelRead := context.WithTimeout(ctx, cfg.FinalReadTimeout)
	defer cancelRead()
	finalBase := readBase
	if cfg.Transactional {
		// Markers count as read: a log may end with one (or with an
		// aborted transaction read_committed skips, then its marker).
		finalBase = append(slices.Clone(readBase), kgo.KeepControlRecords())
	}
	h.Final, err = finalRead(readCtx, &cfg, adm, finalBase, partitions)
	if err != nil {
		h.FinalReadErr = err.Error()
	}
	replicaCtx, cancelReplicas := context.WithTimeout(ctx, cfg.FinalReadTimeout)
	defer cancelReplicas()
	h.Replicas, h.ReplicaCheck = readReplicas(replicaCtx, cl, adm, cfg.Topic, h.Final)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify: interrupted: %w", err)
	}
	r := Check(h)
	r.Topic = cfg.Topic
	return r, nil
}

// workload runs the consumers while the producers produce, then lets the
// consumers catch up with the high watermarks, and records both in h.
func workload(ctx context.Context, cfg *Config, adm *kadm.Client, base, readBase []kgo.Opt, partitions int32, h *History) error {
	cs, err := startConsumers(ctx, cfg, partitions, readBase)
	if err != nil {
		return fmt.Errorf("verify: consumers: %w", err)
	}
	h.Produced, err = produce(ctx, cfg, partitions, base)
	if err != nil {
		cs.close()
		return fmt.Errorf("verify: producers: %w", err)
	}
	cfg.Logger.Info("verify: producers done", "attempted", len(h.Produced))
	drainCtx, cancel := context.WithTimeout(ctx, cfg.DrainTimeout)
	defer cancel()
	if ranges, err := listOffsets(drainCtx, adm, cfg.Topic, partitions); err == nil {
		end := map[int32]int64{}
		for p, r := range ranges {
			if r.end > r.start {
				end[p] = r.end
			}
		}
		if !cs.drain(drainCtx, end) {
			cfg.Logger.Warn("verify: consumers did not catch up with the high watermarks before the drain timeout")
		}
	}
	h.Consumers = cs.close()
	return nil
}

// ensureTopic creates the topic, or reuses it when it exists, and waits
// until every partition has a leader. It returns the partition count.
func ensureTopic(ctx context.Context, cfg *Config, adm *kadm.Client) (int32, error) {
	if !cfg.CheckOnly {
		configs := map[string]*string{}
		if cfg.MinInsyncReplicas > 0 {
			v := strconv.Itoa(cfg.MinInsyncReplicas)
			configs["min.insync.replicas"] = &v
		}
		res, err := adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor, configs, cfg.Topic)
		if err == nil {
			err = res.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return 0, fmt.Errorf("verify: create topic %q: %w", cfg.Topic, err)
		}
	}
	var last error
	for {
		n, err := topicReady(ctx, adm, cfg.Topic)
		if err == nil {
			return n, nil
		}
		last = err
		if werr := wait(ctx, retryBackoff); werr != nil {
			return 0, fmt.Errorf("verify: topic %q not ready: %w", cfg.Topic, last)
		}
	}
}

// topicReady returns the topic's partition count once every partition has
// a leader.
func topicReady(ctx context.Context, adm *kadm.Client, topic string) (int32, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return 0, err
	}
	td, ok := md.Topics[topic]
	if !ok {
		return 0, kerr.UnknownTopicOrPartition
	}
	if td.Err != nil {
		return 0, td.Err
	}
	if len(td.Partitions) == 0 {
		return 0, fmt.Errorf("no partitions yet")
	}
	for p, pd := range td.Partitions {
		if pd.Err != nil {
			return 0, fmt.Errorf("partition %d: %w", p, pd.Err)
		}
		if pd.Leader < 0 {
			return 0, fmt.Errorf("partition %d has no leader", p)
		}
	}
	return int32(len(td.Partitions)), nil
}
