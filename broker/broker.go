package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/group"
	"github.com/mlog/mlog/internal/notify"
	"github.com/mlog/mlog/metrics"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
	"github.com/mlog/mlog/rest"
	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/txn"
)

// Broker is one running node: always a cluster member (a broker started
// alone is a one-node cluster).
type Broker struct {
	cfg       Config
	log       *slog.Logger
	clusterID string
	nodeID    int32

	changed notify.Notifier
	syncer  *storage.Syncer // one per broker: its partitions share fsyncs
	metrics *metrics.Metrics
	groups  *group.Coordinator
	txns    *txn.Coordinator
	cl      *clusterParts
	// aclIndex is the ACL set last built (acls.go).
	aclIndex atomic.Pointer[aclIndex]

	// ctx is the broker's root context: cancelled when shutdown begins,
	// it stops every loop and every call the broker itself started.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the broker starts

	mu      sync.Mutex
	stops   []stopStep         // what Start did, undone in reverse
	servers []*protocol.Server // one per listener, in Config order
	http    *metrics.Server    // nil without Config.HTTPAddr
	started bool
	closed  bool
}

// stopStep undoes one start step; graceful is false for Kill and for a
// Start that failed.
type stopStep struct {
	name string
	stop func(graceful bool) error
}

var _ protocol.Backend = (*Broker)(nil)

// New checks the config and opens the data directory. Start brings the
// node up.
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
	b := &Broker{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), clusterID: clusterID, metrics: metrics.New(), syncer: storage.NewSyncer(),
		nodeID: KafkaNodeID(cfg.NodeID)}
	gcfg := group.DefaultConfig()
	gcfg.Logger, gcfg.InitialRebalanceDelay = b.log, cfg.GroupInitialRebalanceDelay
	if b.groups, err = group.New(gcfg); err != nil {
		return nil, err
	}
	if b.txns, err = b.newTxnCoordinator(); err != nil {
		return nil, err
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.cl = newClusterParts(cfg.Cluster)
	b.metrics.Registry.MustRegister(partitionCollector{b})
	b.removeDeletedDirs()
	return b, nil
}

func (b *Broker) partitionDir(name string, id int32) string {
	return filepath.Join(b.cfg.DataDir, fmt.Sprintf("%s-%d", name, id))
}

// openReplica opens this broker's replica of a partition with the topic's
// configs. Recovery may read the whole active segment: callers hold no
// lock that requests wait on.
func (b *Broker) openReplica(st *cluster.State, topic string, id int32) (*partition.Partition, error) {
	lc, err := b.logConfig(st, st.Topics[topic].Configs)
	if err != nil {
		return nil, err
	}
	lc.Logger = b.log.With("topic", topic, "partition", id)
	lc.OnChange = b.changed.Broadcast
	lc.Syncer = b.syncer
	return partition.Open(partition.Config{Topic: topic, Partition: id, Dir: b.partitionDir(topic, id),
		Log: lc, SyncAcks: b.cfg.SyncAcks, Logger: lc.Logger})
}

// Start brings the node up in order: Raft (metadata), the Kafka listener,
// the HTTP listener, membership with the controller and the loops that
// follow metadata, and retention. When a step fails, the steps before it
// are undone in reverse and the step's own error is returned; Close
// afterwards is safe.
func (b *Broker) Start() error {
	b.mu.Lock()
	if b.started || b.closed {
		b.mu.Unlock()
		return errors.New("broker: already started")
	}
	b.started = true
	b.mu.Unlock()
	steps := []struct {
		name  string
		start func() (func(bool) error, error)
	}{
		{"raft", b.startRaft},
		{"kafka listener", b.startListener},
		{"http listener", b.startHTTP}, // before membership: gossiped (TagHTTP)
		{"membership", b.startMembership},
		{"retention", b.startRetention},
	}
	for _, s := range steps {
		stop, err := s.start()
		if err != nil {
			_ = b.shutdown(false)
			return err
		}
		if stop != nil {
			b.mu.Lock()
			b.stops = append(b.stops, stopStep{s.name, stop})
			b.mu.Unlock()
		}
	}
	b.log.Info("broker started", "kafka_addr", b.Addr().String(), "data_dir", b.cfg.DataDir,
		"broker_id", b.nodeID, "fsync_acks", b.cfg.SyncAcks)
	return nil
}

// goTracked runs fn on a goroutine that shutdown waits for.
func (b *Broker) goTracked(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

// startListener starts every Kafka listener; one that cannot listen
// closes those started before it.
func (b *Broker) startListener() (func(bool) error, error) {
	var started []*protocol.Server
	closeAll := func(bool) error {
		var errs []error
		for i := len(started) - 1; i >= 0; i-- {
			errs = append(errs, started[i].Close())
		}
		return errors.Join(errs...)
	}
	for _, l := range b.cfg.listeners() {
		s, err := protocol.NewServer(b.protocolConfig(l), b)
		if err == nil {
			err = s.Start()
		}
		if err != nil {
			_ = closeAll(false)
			if l.Name != "" {
				err = fmt.Errorf("listener %s: %w", l.Name, err)
			}
			return nil, err
		}
		started = append(started, s)
	}
	b.mu.Lock()
	b.servers = started
	b.mu.Unlock()
	return closeAll, nil
}

func (b *Broker) startRetention() (func(bool) error, error) {
	b.goTracked(b.retentionLoop)
	return nil, nil
}

func (b *Broker) startHTTP() (func(bool) error, error) {
	if b.cfg.HTTPAddr == "" {
		return nil, nil
	}
	proxy, err := b.restProxy()
	if err != nil {
		return nil, err
	}
	routes := map[string]http.Handler{}
	for _, pattern := range rest.Patterns() {
		routes[pattern] = proxy
	}
	hs, err := metrics.Serve(b.cfg.HTTPAddr, b.httpTLS(), b.metrics, b.Ready, b.log, routes)
	if err != nil && b.cfg.HTTPAddrOptional && errors.Is(err, syscall.EADDRINUSE) {
		proxy.Close()
		b.log.Warn("HTTP listener not started: its default address is taken; set --http-addr", "http_addr", b.cfg.HTTPAddr, "err", err)
		return nil, nil
	}
	if err != nil {
		proxy.Close()
		return nil, err
	}
	b.mu.Lock()
	b.http = hs
	b.mu.Unlock()
	b.log.Info("metrics listening", "http_addr", hs.Addr().String())
	return func(bool) error {
		err := hs.Close()
		proxy.Close()
		return err
	}, nil
}

// RaftServers is the Raft configuration as this node knows it: each
// server's node name, and whether it votes.
func (b *Broker) RaftServers() (map[string]bool, error) { return b.cl.node.Servers() }

// HTTPAddr is the metrics listener's address (nil without one).
func (b *Broker) HTTPAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.http == nil {
		return nil
	}
	return b.http.Addr()
}

// Ready reports whether the broker serves with current metadata: its
// metadata has caught up with the Raft log it had.
func (b *Broker) Ready() bool { return b.cl.ready.Load() }

// Addr is the first Kafka listener's address (nil before Start).
func (b *Broker) Addr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.servers) == 0 {
		return nil
	}
	return b.servers[0].Addr()
}

// SerfAddr is where this broker's Serf listens (the port taken, when
// configured with port 0); "" before Start.
func (b *Broker) SerfAddr() string {
	b.cl.mu.Lock()
	defer b.cl.mu.Unlock()
	if b.cl.members == nil {
		return ""
	}
	return b.cl.members.Addr()
}

// RaftAddr is where this broker's Raft listens; "" before Start.
func (b *Broker) RaftAddr() string {
	if b.cl.node == nil {
		return ""
	}
	return b.cl.node.Addr()
}

// Controller names the controller (the Raft leader) as this broker knows
// it: ok is false while there is none or it is not registered yet.
func (b *Broker) Controller() (id int32, ok bool) {
	if b.cl.node == nil {
		return -1, false
	}
	name := b.cl.node.Leader()
	if name == "" {
		return -1, false
	}
	for _, br := range b.cl.fsm.State().Brokers {
		if br.Name == name && br.Alive {
			return br.ID, true
		}
	}
	return -1, false
}

// Close shuts down in reverse: leaderships are handed over first
// (controlled shutdown); then membership (a Serf leave), the HTTP listener,
// the Kafka listener (in-flight requests answered), every loop, Raft, and
// every partition (flushed, clean shutdown recorded).
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
	stops := b.stops
	b.stops = nil
	b.mu.Unlock()
	if graceful && slices.ContainsFunc(stops, func(s stopStep) bool { return s.name == "membership" }) {
		// Bounded: with most of the cluster already gone there may be no
		// controller to ask, and stop scripts wait 10 s before SIGKILL.
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		if err := (controllerClient{b}).ControlledShutdown(ctx); err != nil {
			b.log.Warn("controlled shutdown", "err", err)
		}
		cancel()
	}
	b.cancel()
	b.cl.stopReplication()
	var err error
	for i := len(stops) - 1; i >= 0; i-- {
		if serr := stops[i].stop(graceful); serr != nil {
			err = errors.Join(err, fmt.Errorf("broker: stop %s: %w", stops[i].name, serr))
		}
	}
	b.wg.Wait() // nothing started without a stop step outlives shutdown
	b.txns.Close()
	b.groups.Close()
	b.log.Info("broker stopped")
	return err
}

func (b *Broker) retentionLoop() {
	t := time.NewTicker(b.cfg.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			b.RunRetention()
		}
	}
}

// RunRetention applies retention, and compaction where cleanup.policy asks
// for it, to every partition replica this broker holds, now.
func (b *Broker) RunRetention() {
	for _, p := range b.replicas() {
		if _, err := p.Log().Retention(); err != nil {
			b.log.Warn("retention failed", "topic", p.Topic(), "partition", p.ID(), "err", err)
		}
		if p.Log().Compacted() {
			if _, err := p.Compact(); err != nil {
				b.log.Warn("compaction failed", "topic", p.Topic(), "partition", p.ID(), "err", err)
			}
		}
	}
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

// advertisedFor is this broker's advertised address on the listener
// named listener ("" or an unknown name: the first listener).
func (b *Broker) advertisedFor(listener string) (string, int32) {
	i := 0
	for j, l := range b.cfg.listeners() {
		if l.Name == listener {
			i = j
		}
	}
	host, port, _ := splitHostPort(b.advertisedAddr(i))
	return host, port
}
