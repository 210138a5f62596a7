package verify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
)

// ErrInvalidConfig means a Config failed Validate.
var ErrInvalidConfig = errors.New("verify: invalid config")

// Acks is what a producer waits for before a record counts as acknowledged.
type Acks string

// The acks a run can use, as Kafka spells them.
const (
	AcksAll    Acks = "all" // every in-sync replica (acks=-1)
	AcksLeader Acks = "1"   // the leader only
	AcksNone   Acks = "0"   // nothing: every record counts as acknowledged once sent
)

// ParseAcks reads "all" / "-1", "1" or "0".
func ParseAcks(s string) (Acks, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "all", "-1":
		return AcksAll, nil
	case "1":
		return AcksLeader, nil
	case "0":
		return AcksNone, nil
	}
	return "", fmt.Errorf("%w: acks %q: want all, 1 or 0", ErrInvalidConfig, s)
}

// Config is one verify run.
type Config struct {
	// Seeds are the bootstrap brokers (host:port).
	Seeds []string
	// TLS, when set, is how every client connects; SASL, when set, how
	// each logs in.
	TLS  *tls.Config
	SASL sasl.Mechanism
	// Topic is created when missing, reused when it exists.
	Topic string
	// Partitions and ReplicationFactor are used when the topic is created.
	Partitions        int32
	ReplicationFactor int16
	// MinInsyncReplicas is set as min.insync.replicas on a created topic;
	// 0 leaves the cluster's default.
	MinInsyncReplicas int
	// Producers, Consumers and GroupConsumers are how many clients of each
	// kind run concurrently.
	Producers      int
	Consumers      int
	GroupConsumers int
	// Acks and Idempotent configure every producer; idempotence needs
	// acks=all (Kafka's rule).
	Acks       Acks
	Idempotent bool
	// Transactional makes every producer transactional: records go out in
	// transactions of 1 to TxnMaxRecords records, a tenth of them aborted
	// (chosen by Seed), and consumers and the final read use
	// read_committed. Needs Idempotent.
	Transactional bool
	TxnMaxRecords int
	// Duration is how long the producers produce.
	Duration time.Duration
	// Rate is the total records per second over all producers; 0 is
	// unlimited.
	Rate int
	// RecordSize pads every value to this many bytes (a value is never
	// shorter than its identifying prefix).
	RecordSize int
	// Seed makes the padding and the partition of every record
	// reproducible.
	Seed int64
	// RunID prefixes every value so that runs on a reused topic never
	// collide; empty picks one from the clock.
	RunID string
	// FinalReadTimeout bounds the final read and the replica comparison,
	// which retry while the cluster recovers.
	FinalReadTimeout time.Duration
	// DrainTimeout bounds how long producers may finish records in flight
	// after Duration (the rest are unknown), and how long consumers may
	// catch up with the high watermark before the final read.
	DrainTimeout time.Duration
	// CheckOnly skips producing and consuming: only the final read and the
	// replica comparison run, against whatever the topic holds.
	CheckOnly bool
	// AfterWorkload, when set, runs after producers and consumers stopped
	// and before the final read: a fault harness heals (or breaks) the
	// cluster here. Its error ends the run.
	AfterWorkload func(ctx context.Context) error
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults `mlog verify` runs with.
func DefaultConfig() Config {
	return Config{
		Seeds:             []string{"127.0.0.1:9094"},
		Topic:             "mlog-verify",
		Partitions:        3,
		ReplicationFactor: 3,
		MinInsyncReplicas: 2,
		Producers:         2,
		Consumers:         1,
		GroupConsumers:    1,
		Acks:              AcksAll,
		Idempotent:        true,
		TxnMaxRecords:     10,
		Duration:          30 * time.Second,
		Rate:              1000,
		RecordSize:        100,
		Seed:              1,
		FinalReadTimeout:  60 * time.Second,
		DrainTimeout:      15 * time.Second,
	}
}

// Validate checks the settings and fills the logger.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if len(c.Seeds) == 0 {
		return bad("no seed brokers")
	}
	for _, s := range c.Seeds {
		if strings.TrimSpace(s) == "" {
			return bad("empty seed broker address in %q", strings.Join(c.Seeds, ","))
		}
	}
	if c.Topic == "" {
		return bad("topic is empty")
	}
	if c.Partitions < 1 {
		return bad("partitions %d: want at least 1", c.Partitions)
	}
	if c.ReplicationFactor < 1 {
		return bad("replication factor %d: want at least 1", c.ReplicationFactor)
	}
	if c.MinInsyncReplicas < 0 || c.MinInsyncReplicas > int(c.ReplicationFactor) {
		return bad("min.insync.replicas %d: want 0 (cluster default) up to the replication factor %d", c.MinInsyncReplicas, c.ReplicationFactor)
	}
	if c.Producers < 0 || c.Consumers < 0 || c.GroupConsumers < 0 {
		return bad("producers, consumers and group consumers must not be negative")
	}
	if !c.CheckOnly && c.Producers == 0 {
		return bad("no producers: use at least 1, or check only")
	}
	if _, err := ParseAcks(string(c.Acks)); err != nil {
		return err
	}
	if c.Transactional && (!c.Idempotent || c.TxnMaxRecords < 1) {
		return bad("transactional producers need idempotence (and acks all) and at least 1 record per transaction")
	}
	if c.Idempotent && c.Acks != AcksAll {
		return bad("an idempotent producer needs acks all, not %s", c.Acks)
	}
	if !c.CheckOnly && c.Duration <= 0 {
		return bad("duration %v: want more than 0", c.Duration)
	}
	if c.Rate < 0 {
		return bad("rate %d: want 0 (unlimited) or more", c.Rate)
	}
	if c.RecordSize < 0 || c.RecordSize > 1<<20 {
		return bad("record size %d: want 0 to 1 MiB", c.RecordSize)
	}
	if c.FinalReadTimeout <= 0 {
		return bad("final read timeout %v: want more than 0", c.FinalReadTimeout)
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultConfig().DrainTimeout
	}
	if strings.ContainsAny(c.RunID, "- ") {
		return bad("run id %q: no dashes or spaces", c.RunID)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
