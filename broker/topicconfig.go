package broker

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/protocol"
	"github.com/mlog/mlog/storage"
)

var topicNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// validTopicName applies Kafka's rules: [a-zA-Z0-9._-], at most 249
// characters, not "." or "..".
func validTopicName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: %q", protocol.ErrInvalidTopic, name)
	case len(name) > 249:
		return fmt.Errorf("%w: %d characters, at most 249", protocol.ErrInvalidTopic, len(name))
	case !topicNameRE.MatchString(name):
		return fmt.Errorf("%w: %q may hold only ASCII letters, digits, '.', '_' and '-'", protocol.ErrInvalidTopic, name)
	}
	return nil
}

// topicConfig describes one supported topic config: how to check a value and
// how it sets the partition's log.
type topicConfig struct {
	name  string
	def   func(c *Config, rf int) string // the value enforced when unset, for a topic of rf replicas
	apply func(v string, lc *storage.Config) error
}

func intConfig(min int64, set func(int64, *storage.Config)) func(string, *storage.Config) error {
	return func(v string, lc *storage.Config) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			return fmt.Errorf("%w: %q is not an integer >= %d", protocol.ErrInvalidConfig, v, min)
		}
		set(n, lc)
		return nil
	}
}

func msString(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

var topicConfigs = []topicConfig{
	{"cleanup.policy", func(*Config, int) string { return "delete" }, func(v string, lc *storage.Config) error {
		switch v {
		case "delete":
			lc.Compact, lc.KeepSegments = false, false
		case "compact":
			lc.Compact, lc.KeepSegments = true, true
		case "compact,delete", "delete,compact":
			lc.Compact, lc.KeepSegments = true, false
		default:
			return fmt.Errorf("%w: cleanup.policy %q: want delete, compact or compact,delete", protocol.ErrInvalidConfig, v)
		}
		return nil
	}},
	{"delete.retention.ms", func(c *Config, _ int) string { return msString(c.Log.DeleteRetention) },
		intConfig(0, func(n int64, lc *storage.Config) { lc.DeleteRetention = time.Duration(n) * time.Millisecond })},
	{"max.message.bytes", func(c *Config, _ int) string { return strconv.FormatInt(c.Log.MaxBatchBytes, 10) },
		intConfig(61, func(n int64, lc *storage.Config) { lc.MaxBatchBytes = n })},
	{"min.insync.replicas", func(_ *Config, rf int) string { return strconv.Itoa(defaultMinISR(rf)) }, intConfig(1, func(int64, *storage.Config) {})},
	{"retention.bytes", func(c *Config, _ int) string { return strconv.FormatInt(c.Log.RetentionBytes, 10) },
		intConfig(-1, func(n int64, lc *storage.Config) { lc.RetentionBytes = n })},
	{"retention.ms", func(c *Config, _ int) string { return msString(c.Log.RetentionMs) },
		intConfig(-1, func(n int64, lc *storage.Config) { lc.RetentionMs = time.Duration(n) * time.Millisecond })},
	{"segment.bytes", func(c *Config, _ int) string { return strconv.FormatInt(c.Log.SegmentBytes, 10) },
		intConfig(1024, func(n int64, lc *storage.Config) { lc.SegmentBytes = n })},
	{"segment.index.bytes", func(c *Config, _ int) string { return strconv.FormatInt(c.Log.MaxIndexBytes, 10) },
		intConfig(48, func(n int64, lc *storage.Config) { lc.MaxIndexBytes = n })},
	{"index.interval.bytes", func(c *Config, _ int) string { return strconv.FormatInt(c.Log.IndexIntervalBytes, 10) },
		intConfig(0, func(n int64, lc *storage.Config) { lc.IndexIntervalBytes = n })},
	{"segment.ms", func(c *Config, _ int) string { return msString(c.Log.SegmentMs) },
		intConfig(1, func(n int64, lc *storage.Config) { lc.SegmentMs = time.Duration(n) * time.Millisecond })},
	// What kafka-reassign-partitions.sh --throttle sets on the topics it
	// moves: mlog throttles every replica being added anyway
	// (follower.replication.throttled.rate), so these are kept, not used.
	{"leader.replication.throttled.replicas", func(*Config, int) string { return "" }, checkThrottledReplicas},
	{"follower.replication.throttled.replicas", func(*Config, int) string { return "" }, checkThrottledReplicas},
	{"unclean.leader.election.enable", func(*Config, int) string { return "false" }, func(v string, _ *storage.Config) error {
		if v != "true" && v != "false" {
			return fmt.Errorf("%w: unclean.leader.election.enable %q is not true or false", protocol.ErrInvalidConfig, v)
		}
		return nil
	}},
}

// checkThrottledReplicas checks Kafka's form: "*", or partition:broker
// pairs separated by commas.
func checkThrottledReplicas(v string, _ *storage.Config) error {
	if v == "" || v == "*" {
		return nil
	}
	for _, pair := range strings.Split(v, ",") {
		p, r, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if _, err := strconv.Atoi(p); !ok || err != nil {
			return fmt.Errorf("%w: %q: want * or partition:broker,...", protocol.ErrInvalidConfig, v)
		}
		if _, err := strconv.Atoi(r); err != nil {
			return fmt.Errorf("%w: %q: want * or partition:broker,...", protocol.ErrInvalidConfig, v)
		}
	}
	return nil
}

func findTopicConfig(name string) (topicConfig, bool) {
	i := slices.IndexFunc(topicConfigs, func(tc topicConfig) bool { return tc.name == name })
	if i < 0 {
		return topicConfig{}, false
	}
	return topicConfigs[i], true
}

// logConfig returns the storage settings for a topic with these configs,
// checking every one, over the broker's defaults and st's dynamic ones (st
// may be nil).
func (b *Broker) logConfig(st *cluster.State, configs map[string]string) (storage.Config, error) {
	lc := b.baseLogConfig(st)
	for k, v := range configs {
		tc, ok := findTopicConfig(k)
		if !ok {
			return lc, fmt.Errorf("%w: unknown topic config %q", protocol.ErrInvalidConfig, k)
		}
		if err := tc.apply(v, &lc); err != nil {
			return lc, fmt.Errorf("%s: %w", k, err)
		}
	}
	if err := lc.Validate(); err != nil {
		return lc, fmt.Errorf("%w: %w", protocol.ErrInvalidConfig, err)
	}
	return lc, nil
}

// defaultMinISR is min.insync.replicas for a topic that does not set it:
// 2 with three or more replicas (so acks=all survives the loss of one),
// else 1.
func defaultMinISR(rf int) int {
	if rf >= 3 {
		return 2
	}
	return 1
}

// topicConfigEntries lists every topic config of a topic with rf replicas:
// the value set, or the default mlog enforces for it (the dynamic broker
// defaults of st included).
func (b *Broker) topicConfigEntries(st *cluster.State, configs map[string]string, rf int) []protocol.ConfigEntry {
	var out []protocol.ConfigEntry
	defaults := b.cfg
	defaults.Log = b.baseLogConfig(st)
	for _, tc := range topicConfigs {
		v, set := configs[tc.name]
		if !set {
			v = tc.def(&defaults, rf)
		}
		out = append(out, protocol.ConfigEntry{Name: tc.name, Value: &v, Default: !set})
	}
	return out
}

// staticBrokerConfigs lists the broker's settings, read-only, with the
// values it enforces (lc: its default log settings now):
// default.replication.factor is min(3, live brokers) now, and
// min.insync.replicas what a topic created with it gets.
func (b *Broker) staticBrokerConfigs(lc storage.Config) []protocol.ConfigEntry {
	rf := b.defaultReplicationFactor()
	kv := [][2]string{
		{"broker.id", fmt.Sprint(b.nodeID)},
		{"node.id", b.cfg.NodeID},
		{"log.dirs", b.cfg.DataDir},
		{"auto.create.topics.enable", fmt.Sprint(b.cfg.AutoCreateTopics)},
		{"num.partitions", fmt.Sprint(b.cfg.DefaultPartitions)},
		{"default.replication.factor", fmt.Sprint(rf)},
		{"min.insync.replicas", fmt.Sprint(defaultMinISR(rf))},
		{"offsets.topic.num.partitions", fmt.Sprint(b.cfg.OffsetsPartitions)},
		{"offsets.topic.replication.factor", fmt.Sprint(b.offsetsReplicationFactor())},
		{"replica.lag.time.max.ms", msString(b.cfg.Cluster.ReplicaLagMax)},
		{"broker.rack", b.cfg.Cluster.Rack},
		{"log.retention.ms", msString(lc.RetentionMs)},
		{"log.retention.bytes", fmt.Sprint(lc.RetentionBytes)},
		{"log.segment.bytes", fmt.Sprint(lc.SegmentBytes)},
		{"log.retention.check.interval.ms", msString(b.cfg.RetentionCheckInterval)},
		{"message.max.bytes", fmt.Sprint(b.cfg.Log.MaxBatchBytes)},
		{"socket.request.max.bytes", fmt.Sprint(b.cfg.MaxRequestBytes)},
		{"unclean.leader.election.enable", "false"},
		{"mlog.fsync", map[bool]string{true: "always", false: "never"}[b.cfg.SyncAcks]},
	}
	out := make([]protocol.ConfigEntry, 0, len(kv))
	for _, e := range kv {
		v := e[1]
		out = append(out, protocol.ConfigEntry{Name: e[0], Value: &v, ReadOnly: true})
	}
	return out
}
