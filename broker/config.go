package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/mlog/mlog/storage"
)

// ErrInvalidConfig means a Config failed Validate.
var ErrInvalidConfig = errors.New("broker: invalid config")

// Config is one broker's settings.
type Config struct {
	// NodeID names the node ("node-1"); its trailing number is the Kafka
	// broker id clients see.
	NodeID string
	// DataDir holds every partition's log and the node's metadata.
	DataDir string
	// ListenAddr is the Kafka listener's host:port.
	ListenAddr string
	// HTTPAddr is the host:port of /metrics, /healthz and /readyz; empty
	// for none.
	HTTPAddr string
	// AdvertisedAddr is the host:port clients are told to connect to;
	// ListenAddr when empty.
	AdvertisedAddr string
	// AutoCreateTopics creates a topic on its first produce or metadata
	// request (auto.create.topics.enable).
	AutoCreateTopics bool
	// DefaultPartitions is num.partitions for auto-created topics and
	// CreateTopics asking for -1.
	DefaultPartitions int32
	// MaxPartitions bounds a topic's partition count: each partition is a
	// directory with preallocated indexes, so one request must not be able
	// to ask for millions.
	MaxPartitions int32
	// OffsetsPartitions is how many partitions __consumer_offsets gets
	// (offsets.topic.num.partitions).
	OffsetsPartitions int32
	// OffsetsReplicationFactor is offsets.topic.replication.factor: the
	// offsets topic is created only once this many brokers are alive
	// (FindCoordinator answers COORDINATOR_NOT_AVAILABLE until then, and
	// clients retry), so it never starts with fewer replicas for good.
	// 0 takes min(3, this node and its configured peers).
	OffsetsReplicationFactor int16
	// OffsetsSegmentBytes is segment.bytes of __consumer_offsets, which is
	// compacted: a closed segment is where compaction can start
	// (offsets.topic.segment.bytes, 100 MiB as in Kafka).
	OffsetsSegmentBytes int64
	// GroupInitialRebalanceDelay holds an empty group's first rebalance
	// back (group.initial.rebalance.delay.ms); 0 takes the default.
	GroupInitialRebalanceDelay time.Duration
	// SyncAcks answers acks=1/all produces after fsync (group commit); off
	// trusts the page cache, as Kafka does (--fsync=never).
	SyncAcks bool
	// MaxRequestBytes closes connections sending bigger frames.
	MaxRequestBytes int32
	// ShutdownGrace is how long Close lets responses in flight be written
	// to clients that are slow to read them.
	ShutdownGrace time.Duration
	// RetentionCheckInterval is how often retention runs
	// (log.retention.check.interval.ms).
	RetentionCheckInterval time.Duration
	// Cluster, when set, makes the broker a cluster member (Serf, Raft,
	// replication); nil runs it standalone with metadata.json.
	Cluster *ClusterConfig
	// Log is the default for every partition's log (topic configs override).
	Log storage.Config
	// Logger receives the broker's logs.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults `mlog server` runs with.
func DefaultConfig() Config {
	return Config{
		NodeID:                 "node-1",
		DataDir:                "/tmp/mlog",
		ListenAddr:             "127.0.0.1:9094",
		AutoCreateTopics:       true,
		DefaultPartitions:      1,
		MaxPartitions:          10000,
		OffsetsPartitions:      16,
		OffsetsSegmentBytes:    100 << 20,
		SyncAcks:               true,
		MaxRequestBytes:        100 << 20,
		RetentionCheckInterval: 5 * time.Minute,
		ShutdownGrace:          5 * time.Second,
		Log:                    storage.DefaultConfig(),
	}
}

// Validate checks the settings and fills the logger.
func (c *Config) Validate() error {
	if c.NodeID == "" {
		return fmt.Errorf("%w: node id is empty", ErrInvalidConfig)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: data dir is empty", ErrInvalidConfig)
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return fmt.Errorf("%w: listen address %q: %w", ErrInvalidConfig, c.ListenAddr, err)
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := splitHostPort(c.AdvertisedAddr); err != nil {
			return fmt.Errorf("%w: advertised address %q: %w", ErrInvalidConfig, c.AdvertisedAddr, err)
		}
	}
	if c.MaxPartitions < 1 {
		c.MaxPartitions = DefaultConfig().MaxPartitions
	}
	if c.OffsetsSegmentBytes < 1024 {
		c.OffsetsSegmentBytes = DefaultConfig().OffsetsSegmentBytes
	}
	if c.OffsetsPartitions < 1 {
		c.OffsetsPartitions = DefaultConfig().OffsetsPartitions
	}
	if c.OffsetsReplicationFactor < 0 {
		return fmt.Errorf("%w: offsets topic replication factor %d", ErrInvalidConfig, c.OffsetsReplicationFactor)
	}
	if c.DefaultPartitions < 1 || c.DefaultPartitions > c.MaxPartitions {
		return fmt.Errorf("%w: default partitions %d not in [1, %d]", ErrInvalidConfig, c.DefaultPartitions, c.MaxPartitions)
	}
	if c.MaxRequestBytes < 1024 {
		return fmt.Errorf("%w: max request bytes %d", ErrInvalidConfig, c.MaxRequestBytes)
	}
	if c.RetentionCheckInterval <= 0 {
		return fmt.Errorf("%w: retention check interval %v", ErrInvalidConfig, c.RetentionCheckInterval)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	lc := c.Log
	if err := lc.Validate(); err != nil {
		return err
	}
	return nil
}

func splitHostPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", port, err)
	}
	return host, int32(p), nil
}

// KafkaNodeID maps a node name to the int32 broker id Kafka clients use: its
// trailing number ("node-3" is 3), or, for names without one, a stable hash.
func KafkaNodeID(name string) int32 {
	end := len(name)
	start := end
	for start > 0 && name[start-1] >= '0' && name[start-1] <= '9' {
		start--
	}
	if start < end && end-start <= 9 {
		n, _ := strconv.Atoi(name[start:end])
		return int32(n)
	}
	var h uint32 = 2166136261
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return int32(h&0x3fffffff) + 1000
}
