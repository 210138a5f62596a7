package broker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mlog/mlog/metrics"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/mlog/mlog/group"
	"github.com/mlog/mlog/internal/notify"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
)

// Broker is one running node.
type Broker struct {
	cfg       Config
	log       *slog.Logger
	clusterID string
	nodeID    int32

	mu      sync.RWMutex
	topics  map[string]*topic
	meta    metadata // as last saved; mu guards it
	nextPID int64

	changed notify.Notifier
	server  *protocol.Server
	metrics *metrics.Metrics
	http    *metrics.Server // nil without Config.HTTPAddr
	groups  *group.Coordinator
	cl      *clusterParts // nil for a standalone broker
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  bool
}

type topic struct {
	name    string
	id      [16]byte
	configs map[string]string
	parts   []*partition.Partition
}

var _ protocol.Backend = (*Broker)(nil)

// New opens the data directory and every partition in it. Start begins
// serving.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: create data dir: %w", err)
	}
	clusterID, err := identity(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), clusterID: clusterID, metrics: metrics.New(),
		nodeID: KafkaNodeID(cfg.NodeID), topics: map[string]*topic{}, stop: make(chan struct{})}
	b.metrics.Registry.MustRegister(partitionCollector{b})
	gcfg := group.DefaultConfig()
	gcfg.Logger = b.log
	if cfg.GroupInitialRebalanceDelay > 0 {
		gcfg.InitialRebalanceDelay = cfg.GroupInitialRebalanceDelay
	}
	b.groups = group.New(gcfg)
	b.removeDeletedDirs()
	if cfg.Cluster != nil {
		return b, nil // topics come from the Raft metadata once started
	}
	m, err := loadMetadata(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	b.meta = m
	b.nextPID = m.ProducerIDLimit
	for _, tm := range m.Topics {
		t, err := b.openTopic(tm)
		if err != nil {
			b.closePartitions()
			return nil, err
		}
		b.topics[t.name] = t
		b.electLocalOffsets(t)
	}
	return b, nil
}

func (b *Broker) openTopic(tm topicMetadata) (*topic, error) {
	id, err := parseTopicID(tm.ID)
	if err != nil {
		return nil, err
	}
	t := &topic{name: tm.Name, id: id, configs: tm.Configs}
	if t.configs == nil {
		t.configs = map[string]string{}
	}
	for i := range tm.Partitions {
		p, err := b.openPartition(t, i)
		if err != nil {
			for _, p := range t.parts {
				_ = p.Close()
			}
			return nil, err
		}
		t.parts = append(t.parts, p)
	}
	return t, nil
}

func (b *Broker) partitionDir(name string, id int32) string {
	return filepath.Join(b.cfg.DataDir, fmt.Sprintf("%s-%d", name, id))
}

func (b *Broker) openPartition(t *topic, id int32) (*partition.Partition, error) {
	return b.openLocal(t.name, id, t.configs, false)
}

// openLocal opens this broker's replica of a partition with the topic's
// configs; replicated replicas take their high watermark from replication.
func (b *Broker) openLocal(topic string, id int32, configs map[string]string, replicated bool) (*partition.Partition, error) {
	lc, err := b.logConfig(configs)
	if err != nil {
		return nil, err
	}
	lc.Logger = b.log.With("topic", topic, "partition", id)
	lc.OnChange = b.changed.Broadcast
	return partition.Open(partition.Config{Topic: topic, Partition: id, Dir: b.partitionDir(topic, id),
		Log: lc, SyncAcks: b.cfg.SyncAcks, Replicated: replicated, Logger: lc.Logger})
}

// Start opens the Kafka listener and the retention loop. When a step
// fails, the steps before it are undone, so Close afterwards is safe and
// the caller sees the step's own error.
func (b *Broker) Start() error {
	if b.cfg.Cluster != nil {
		if err := b.startRaft(); err != nil {
			b.cl = nil
			return err
		}
	}
	b.server = protocol.NewServer(protocol.Config{Addr: b.cfg.ListenAddr, MaxRequestBytes: b.cfg.MaxRequestBytes,
		ShutdownGrace: b.cfg.ShutdownGrace, Logger: b.log, Metrics: b.metrics}, b)
	if err := b.server.Start(); err != nil {
		b.server = nil
		b.abortCluster()
		return err
	}
	if b.cfg.Cluster != nil {
		if err := b.startMembership(); err != nil {
			_ = b.server.Close()
			b.server = nil
			b.abortCluster()
			return err
		}
	}
	b.wg.Add(1)
	go b.retentionLoop()
	if b.cfg.HTTPAddr != "" {
		hs, err := metrics.Serve(b.cfg.HTTPAddr, b.metrics, b.Ready, b.log)
		if err != nil {
			_ = b.shutdown(false)
			return err
		}
		b.http = hs
		b.log.Info("metrics listening", "http_addr", hs.Addr().String())
	}
	b.log.Info("broker started", "kafka_addr", b.server.Addr().String(), "data_dir", b.cfg.DataDir,
		"broker_id", b.nodeID, "fsync_acks", b.cfg.SyncAcks)
	return nil
}

// abortCluster undoes startRaft after a later start step failed: the
// catch-up goroutine stops and Raft shuts down.
func (b *Broker) abortCluster() {
	if b.cl == nil {
		return
	}
	close(b.cl.stop)
	b.cl.wg.Wait()
	_ = b.cl.node.Shutdown()
	b.cl = nil
}

// HTTPAddr is the metrics listener's address (nil without one).
func (b *Broker) HTTPAddr() net.Addr {
	if b.http == nil {
		return nil
	}
	return b.http.Addr()
}

// Ready reports whether the broker serves with current metadata: always
// for a standalone broker; in a cluster once its metadata has caught up
// with the Raft log.
func (b *Broker) Ready() bool { return b.cl == nil || b.cl.ready.Load() }

// Addr is the Kafka listener's address.
func (b *Broker) Addr() net.Addr { return b.server.Addr() }

// Close shuts down in reverse: in a cluster, leaderships are handed over
// first (controlled shutdown); then the listener (in-flight requests
// answered), the retention loop, membership and Raft, and every partition
// (flushed, clean-shutdown recorded).
func (b *Broker) Close() error { return b.shutdown(true) }

// Kill stops the broker as a crash looks to the rest of the cluster: no
// controlled shutdown, no Serf leave. (Its logs are still closed cleanly;
// tests that need torn logs kill a process.)
func (b *Broker) Kill() error { return b.shutdown(false) }

func (b *Broker) shutdown(graceful bool) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	var err error
	if b.cl != nil && graceful {
		// Bounded: with most of the cluster already gone there may be no
		// controller to ask, and stop scripts wait 10 s before SIGKILL.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if cerr := b.controlledShutdown(ctx); cerr != nil {
			b.log.Warn("controlled shutdown", "err", cerr)
		}
		cancel()
	}
	if b.http != nil {
		err = b.http.Close()
	}
	if b.server != nil {
		err = errors.Join(err, b.server.Close())
	}
	close(b.stop)
	b.wg.Wait()
	if b.cl != nil {
		err = errors.Join(err, b.stopCluster(graceful))
	}
	b.groups.Close()
	err = errors.Join(err, b.closePartitions())
	b.log.Info("broker stopped")
	return err
}

func (b *Broker) closePartitions() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	for _, t := range b.topics {
		for _, p := range t.parts {
			err = errors.Join(err, p.Close())
		}
	}
	return err
}

func (b *Broker) retentionLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.RunRetention()
		}
	}
}

// RunRetention applies retention, and compaction where cleanup.policy asks
// for it, to every partition replica this broker holds, now.
func (b *Broker) RunRetention() {
	for _, p := range b.localPartitions() {
		if _, err := p.Log().Retention(); err != nil {
			b.log.Warn("retention failed", "topic", p.Topic(), "partition", p.ID(), "err", err)
		}
		if p.Log().Compacted() {
			if _, err := p.Log().Compact(p.HighWatermark(), -1); err != nil {
				b.log.Warn("compaction failed", "topic", p.Topic(), "partition", p.ID(), "err", err)
			}
		}
	}
}

// localPartitions lists the partition replicas on this broker: the
// cluster's replicas, or a standalone broker's topics.
func (b *Broker) localPartitions() []*partition.Partition {
	var parts []*partition.Partition
	if b.cl != nil {
		b.cl.mu.Lock()
		for _, p := range b.cl.parts {
			parts = append(parts, p)
		}
		b.cl.mu.Unlock()
		return parts
	}
	b.mu.RLock()
	for _, t := range b.topics {
		parts = append(parts, t.parts...)
	}
	b.mu.RUnlock()
	return parts
}

// removeDeletedDirs finishes deletions a crash interrupted.
func (b *Broker) removeDeletedDirs() {
	ents, _ := os.ReadDir(b.cfg.DataDir)
	for _, e := range ents {
		if e.IsDir() && strings.HasSuffix(e.Name(), "-delete") {
			if err := os.RemoveAll(filepath.Join(b.cfg.DataDir, e.Name())); err != nil {
				b.log.Warn("remove deleted partition", "dir", e.Name(), "err", err)
			}
		}
	}
}

// --- protocol.Backend ---

// Cluster describes the brokers and the controller.
func (b *Broker) Cluster() protocol.ClusterInfo {
	if b.cl != nil {
		return b.clusterInfo()
	}
	host, port := b.advertised()
	return protocol.ClusterInfo{ClusterID: b.clusterID, ControllerID: b.nodeID,
		Brokers: []protocol.BrokerInfo{{NodeID: b.nodeID, Host: host, Port: port}}}
}

func (b *Broker) advertised() (string, int32) {
	addr := b.cfg.AdvertisedAddr
	if addr == "" && b.server != nil && b.server.Addr() != nil {
		addr = b.server.Addr().String()
	}
	if addr == "" {
		addr = b.cfg.ListenAddr
	}
	host, port, _ := splitHostPort(addr)
	return host, port
}

func (b *Broker) info(t *topic) protocol.TopicInfo {
	ti := protocol.TopicInfo{Name: t.name, ID: t.id, Internal: t.name == group.OffsetsTopic}
	for i := range t.parts {
		ti.Partitions = append(ti.Partitions, protocol.PartitionInfo{ID: int32(i), Leader: b.nodeID,
			Replicas: []int32{b.nodeID}, ISR: []int32{b.nodeID}})
	}
	return ti
}

// Topics lists every topic, sorted by name.
func (b *Broker) Topics() []protocol.TopicInfo {
	if b.cl != nil {
		return b.clusterTopics()
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]protocol.TopicInfo, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, b.info(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic describes one topic.
func (b *Broker) Topic(name string) (protocol.TopicInfo, error) {
	if err := validTopicName(name); err != nil {
		return protocol.TopicInfo{}, err
	}
	if b.cl != nil {
		return b.clusterTopic(name)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[name]
	if !ok {
		return protocol.TopicInfo{}, fmt.Errorf("%w: %q", protocol.ErrUnknownTopic, name)
	}
	return b.info(t), nil
}

// AutoCreate creates a topic with defaults when auto-creation is on.
func (b *Broker) AutoCreate(ctx context.Context, name string) (protocol.TopicInfo, error) {
	if !b.cfg.AutoCreateTopics {
		return protocol.TopicInfo{}, fmt.Errorf("%w: %q (auto-creation is off)", protocol.ErrUnknownTopic, name)
	}
	t, err := b.CreateTopic(ctx, protocol.TopicSpec{Name: name, Partitions: -1, ReplicationFactor: -1}, false)
	if errors.Is(err, protocol.ErrTopicExists) || errors.Is(err, kerr.TopicAlreadyExists) {
		// Another request created it first (here or, forwarded, on the
		// controller): wait until this broker's metadata shows it.
		if b.cl != nil {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			b.waitForTopic(wctx, name, true)
			cancel()
		}
		return b.Topic(name)
	}
	if err == nil {
		b.log.Info("auto-created topic", "topic", name, "partitions", len(t.Partitions))
	}
	return t, err
}

// CreateTopic creates a topic (or only checks that it could).
func (b *Broker) CreateTopic(ctx context.Context, spec protocol.TopicSpec, validateOnly bool) (protocol.TopicInfo, error) {
	if err := validTopicName(spec.Name); err != nil {
		return protocol.TopicInfo{}, err
	}
	if spec.Partitions == -1 {
		spec.Partitions = b.cfg.DefaultPartitions
	}
	if spec.Partitions < 1 || spec.Partitions > b.cfg.MaxPartitions {
		return protocol.TopicInfo{}, fmt.Errorf("%w: %d, want 1 to %d", protocol.ErrInvalidPartitions, spec.Partitions, b.cfg.MaxPartitions)
	}
	if _, err := b.logConfig(spec.Configs); err != nil {
		return protocol.TopicInfo{}, err
	}
	if b.cl != nil {
		return b.clusterCreateTopic(ctx, spec, validateOnly)
	}
	if spec.ReplicationFactor != -1 && spec.ReplicationFactor != 1 {
		return protocol.TopicInfo{}, fmt.Errorf("%w: %d, this cluster has 1 broker", protocol.ErrInvalidReplication, spec.ReplicationFactor)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return protocol.TopicInfo{}, protocol.ErrBrokerNotAvailable
	}
	if _, ok := b.topics[spec.Name]; ok {
		return protocol.TopicInfo{}, fmt.Errorf("%w: %q", protocol.ErrTopicExists, spec.Name)
	}
	tm := topicMetadata{Name: spec.Name, Partitions: spec.Partitions, Configs: spec.Configs}
	id := newTopicID()
	tm.ID = hex.EncodeToString(id[:])
	if validateOnly {
		t := &topic{name: spec.Name, id: id, parts: make([]*partition.Partition, spec.Partitions)}
		return b.info(t), nil
	}
	t, err := b.openTopic(tm)
	if err != nil {
		return protocol.TopicInfo{}, err
	}
	m := b.meta
	m.Topics = append(append([]topicMetadata(nil), m.Topics...), tm)
	if err := saveMetadata(b.cfg.DataDir, m); err != nil {
		for _, p := range t.parts {
			_ = p.Close()
		}
		return protocol.TopicInfo{}, err
	}
	b.meta = m
	b.topics[t.name] = t
	b.electLocalOffsets(t)
	return b.info(t), nil
}

// electLocalOffsets: a standalone broker leads every partition it has,
// those of __consumer_offsets included.
func (b *Broker) electLocalOffsets(t *topic) {
	if t.name != group.OffsetsTopic {
		return
	}
	for i, p := range t.parts {
		b.electOffsets(int32(i), p, true)
	}
}

// DeleteTopic removes a topic and its data. The partition directories are
// renamed out of the way first and the metadata saved; if either fails, all
// of it is undone and the topic keeps serving.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if err := validTopicName(name); err != nil {
		return err
	}
	if b.cl != nil {
		return b.clusterDeleteTopic(ctx, name)
	}
	b.mu.Lock()
	t, ok := b.topics[name]
	if !ok {
		b.mu.Unlock()
		return fmt.Errorf("%w: %q", protocol.ErrUnknownTopic, name)
	}
	m := b.meta
	m.Topics = nil
	for _, tm := range b.meta.Topics {
		if tm.Name != name {
			m.Topics = append(m.Topics, tm)
		}
	}
	for _, p := range t.parts {
		_ = p.Close()
	}
	// Renamed dirs end in "-delete": a crash after the metadata is saved
	// leaves only those, and start-up removes them.
	var moved [][2]string
	err := func() error {
		for i := range t.parts {
			dir := b.partitionDir(name, int32(i))
			del := fmt.Sprintf("%s.%s-delete", dir, hex.EncodeToString(t.id[:]))
			if err := os.Rename(dir, del); err != nil {
				return fmt.Errorf("broker: delete %s: %w", dir, err)
			}
			moved = append(moved, [2]string{dir, del})
		}
		return saveMetadata(b.cfg.DataDir, m)
	}()
	if err != nil {
		b.restoreTopicLocked(t, moved)
		b.mu.Unlock()
		return err
	}
	b.meta = m
	delete(b.topics, name)
	b.mu.Unlock()
	for _, mv := range moved {
		if err := os.RemoveAll(mv[1]); err != nil {
			b.log.Warn("remove deleted partition", "dir", mv[1], "err", err)
		}
	}
	b.log.Info("deleted topic", "topic", name)
	b.changed.Broadcast()
	return nil
}

// restoreTopicLocked undoes a failed delete: directories back, partitions
// reopened. Caller holds mu.
func (b *Broker) restoreTopicLocked(t *topic, moved [][2]string) {
	for _, mv := range moved {
		if err := os.Rename(mv[1], mv[0]); err != nil {
			b.log.Error("undo topic delete", "dir", mv[0], "err", err)
		}
	}
	for i := range t.parts {
		p, err := b.openPartition(t, int32(i))
		if err != nil {
			b.log.Error("reopen partition after a failed delete", "topic", t.name, "partition", i, "err", err)
			continue
		}
		t.parts[i] = p
	}
}

// CreatePartitions grows a topic to count partitions.
func (b *Broker) CreatePartitions(ctx context.Context, name string, count int32, validateOnly bool) error {
	if err := validTopicName(name); err != nil {
		return err
	}
	if count > b.cfg.MaxPartitions {
		return fmt.Errorf("%w: %d, at most %d", protocol.ErrInvalidPartitions, count, b.cfg.MaxPartitions)
	}
	if b.cl != nil {
		return b.clusterCreatePartitions(ctx, name, count, validateOnly)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return fmt.Errorf("%w: %q", protocol.ErrUnknownTopic, name)
	}
	if count > b.cfg.MaxPartitions {
		return fmt.Errorf("%w: %d, at most %d", protocol.ErrInvalidPartitions, count, b.cfg.MaxPartitions)
	}
	if int(count) <= len(t.parts) {
		return fmt.Errorf("%w: topic %q has %d partitions, asked for %d (partitions can only be added)", protocol.ErrInvalidPartitions, name, len(t.parts), count)
	}
	if validateOnly {
		return nil
	}
	var added []*partition.Partition
	for i := int32(len(t.parts)); i < count; i++ {
		p, err := b.openPartition(t, i)
		if err != nil {
			for _, p := range added {
				_ = p.Close()
			}
			return err
		}
		added = append(added, p)
	}
	m := b.meta
	m.Topics = append([]topicMetadata(nil), b.meta.Topics...)
	for i := range m.Topics {
		if m.Topics[i].Name == name {
			m.Topics[i].Partitions = count
		}
	}
	if err := saveMetadata(b.cfg.DataDir, m); err != nil {
		for _, p := range added {
			_ = p.Close()
		}
		return err
	}
	b.meta = m
	t.parts = append(t.parts, added...)
	return nil
}

// Partition returns this broker's replica of a partition.
func (b *Broker) Partition(name string, id int32) (*partition.Partition, error) {
	if b.cl != nil {
		return b.clusterPartition(name, id)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[name]
	if !ok {
		if err := validTopicName(name); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %q", protocol.ErrUnknownTopic, name)
	}
	if id < 0 || int(id) >= len(t.parts) {
		return nil, fmt.Errorf("%w: %s-%d", protocol.ErrUnknownPartition, name, id)
	}
	return t.parts[id], nil
}

// TopicConfigs lists a topic's configs with defaults filled in.
func (b *Broker) TopicConfigs(name string) ([]protocol.ConfigEntry, error) {
	if b.cl != nil {
		return b.clusterTopicConfigs(name)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", protocol.ErrUnknownTopic, name)
	}
	return b.topicConfigEntries(t.configs), nil
}

// BrokerConfigs lists the broker's settings, read-only.
func (b *Broker) BrokerConfigs() []protocol.ConfigEntry {
	kv := [][2]string{
		{"broker.id", fmt.Sprint(b.nodeID)},
		{"node.id", b.cfg.NodeID},
		{"log.dirs", b.cfg.DataDir},
		{"auto.create.topics.enable", fmt.Sprint(b.cfg.AutoCreateTopics)},
		{"num.partitions", fmt.Sprint(b.cfg.DefaultPartitions)},
		{"default.replication.factor", "1"},
		{"log.retention.ms", msString(b.cfg.Log.RetentionMs)},
		{"log.retention.bytes", fmt.Sprint(b.cfg.Log.RetentionBytes)},
		{"log.segment.bytes", fmt.Sprint(b.cfg.Log.SegmentBytes)},
		{"log.retention.check.interval.ms", msString(b.cfg.RetentionCheckInterval)},
		{"message.max.bytes", fmt.Sprint(b.cfg.Log.MaxBatchBytes)},
		{"socket.request.max.bytes", fmt.Sprint(b.cfg.MaxRequestBytes)},
		{"mlog.fsync", map[bool]string{true: "always", false: "never"}[b.cfg.SyncAcks]},
	}
	out := make([]protocol.ConfigEntry, 0, len(kv))
	for _, e := range kv {
		v := e[1]
		out = append(out, protocol.ConfigEntry{Name: e[0], Value: &v, ReadOnly: true})
	}
	return out
}

// NewProducerID hands out producer ids, persisting them in blocks so that a
// restart never reuses one.
func (b *Broker) NewProducerID(ctx context.Context) (int64, int16, error) {
	if b.cl != nil {
		return b.clusterProducerID(ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nextPID >= b.meta.ProducerIDLimit {
		m := b.meta
		m.ProducerIDLimit = b.nextPID + producerIDBlock
		if err := saveMetadata(b.cfg.DataDir, m); err != nil {
			return 0, 0, err
		}
		b.meta = m
	}
	id := b.nextPID
	b.nextPID++
	return id, 0, nil
}

// Changed returns a channel closed when any partition may have new data.
func (b *Broker) Changed() <-chan struct{} { return b.changed.Wait() }
