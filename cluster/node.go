package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

var (
	// ErrNotLeader means a command was applied on a node that is not the
	// Raft leader (the controller).
	ErrNotLeader = errors.New("cluster: not the controller")
	// ErrInvalidConfig means a Config failed Validate.
	ErrInvalidConfig = errors.New("cluster: invalid config")
)

// Config configures a node's Raft.
type Config struct {
	// NodeName is the Raft server id (the mlog node id).
	NodeName string
	// BindAddr is the Raft transport's listen address.
	BindAddr string
	// AdvertiseAddr is the address other nodes dial; BindAddr when empty.
	AdvertiseAddr string
	// Dir holds the Raft log, stable store and snapshots.
	Dir string
	// Bootstrap makes this node a one-voter cluster when it has no Raft
	// state yet. Leave it false to decide later (Node.Bootstrap), once
	// membership has shown whether a cluster already exists.
	Bootstrap bool
	// Voters is how many nodes the controller makes voters; later ones
	// join as non-voters.
	Voters int
	// Fast shortens Raft's timeouts, for tests on one machine.
	Fast   bool
	Logger *slog.Logger
}

// Node is one member of the metadata Raft group.
type Node struct {
	cfg       Config
	fsm       *FSM
	hadState  bool // Raft state on disk when opened
	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	log       *slog.Logger
}

// Open starts Raft on the data in cfg.Dir.
func Open(cfg Config, fsm *FSM) (*Node, error) {
	if cfg.NodeName == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("%w: node name and dir are required", ErrInvalidConfig)
	}
	if cfg.Voters < 1 {
		cfg.Voters = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: slogWriter{cfg.Logger}, Level: hclog.Warn})
	rc.SnapshotThreshold = 1024
	if cfg.Fast {
		rc.HeartbeatTimeout = 300 * time.Millisecond
		rc.ElectionTimeout = 300 * time.Millisecond
		rc.LeaderLeaseTimeout = 150 * time.Millisecond
		rc.CommitTimeout = 10 * time.Millisecond
	}
	adv := cfg.AdvertiseAddr
	if adv == "" {
		adv = cfg.BindAddr
	}
	advAddr, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil {
		return nil, fmt.Errorf("%w: raft advertise address %q: %w", ErrInvalidConfig, adv, err)
	}
	if advAddr.IP.IsUnspecified() {
		return nil, fmt.Errorf("%w: raft address %q is not one other nodes can dial: set an advertise address", ErrInvalidConfig, adv)
	}
	// MaxRPCsInFlight 1: no AppendEntries pipeline. Metadata traffic is
	// light, and a pipeline whose follower stops answering can leave
	// Raft's shutdown waiting forever on its in-flight queue (seen: a
	// broker's Close hung behind it in a rolling restart).
	transport, err := raft.NewTCPTransportWithConfig(cfg.BindAddr, advAddr, &raft.NetworkTransportConfig{
		MaxPool: 3, Timeout: 10 * time.Second, MaxRPCsInFlight: 1,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "raft-net", Output: slogWriter{cfg.Logger}, Level: hclog.Warn})})
	if err != nil {
		return nil, fmt.Errorf("cluster: raft transport on %s: %w", cfg.BindAddr, err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(cfg.Dir, "raft.db"))
	if err != nil {
		_ = transport.Close()
		return nil, fmt.Errorf("cluster: raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(cfg.Dir, 2, slogWriter{cfg.Logger})
	if err != nil {
		_ = store.Close()
		_ = transport.Close()
		return nil, fmt.Errorf("cluster: raft snapshots: %w", err)
	}
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		_ = store.Close()
		_ = transport.Close()
		return nil, err
	}
	if cfg.Bootstrap {
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: transport.LocalAddr()}}}
			if err := raft.BootstrapCluster(rc, store, store, snaps, transport, conf); err != nil {
				_ = store.Close()
				_ = transport.Close()
				return nil, fmt.Errorf("cluster: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, fsm, store, store, snaps, transport)
	if err != nil {
		_ = store.Close()
		_ = transport.Close()
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	return &Node{cfg: cfg, fsm: fsm, hadState: has, raft: r, transport: transport, store: store, log: cfg.Logger}, nil
}

// HadState reports whether the node found Raft state on disk when it
// opened: it was a member of a cluster before.
func (n *Node) HadState() bool { return n.hadState }

// HasState reports whether the node holds any Raft log or snapshot now:
// it bootstrapped, or a leader has replicated to it.
func (n *Node) HasState() bool { return n.raft.LastIndex() > 0 }

// Bootstrap makes this node a one-voter cluster of its own. Raft refuses
// when the node already has state.
func (n *Node) Bootstrap() error {
	conf := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(n.cfg.NodeName), Address: n.transport.LocalAddr()}}}
	if err := n.raft.BootstrapCluster(conf).Error(); err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	return nil
}

// Apply commits a command and returns its result. Only the leader can.
func (n *Node) Apply(ctx context.Context, typ string, body any) (any, error) {
	data, err := NewCommand(typ, body)
	if err != nil {
		return nil, err
	}
	if n.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	f := n.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return nil, fmt.Errorf("cluster: apply %s: %w", typ, err)
	}
	res := f.Response().(applyResult)
	return res.value, res.err
}

// ErrStopped means a wait was abandoned because the node is stopping.
var ErrStopped = errors.New("cluster: stopped")

// WaitCaughtUp waits until the FSM has applied every entry this node's Raft
// log held when it started (a restart replays them once a leader confirms
// the commit index), or stop closes. A new node has nothing to wait for.
func (n *Node) WaitCaughtUp(stop <-chan struct{}) error {
	target := n.raft.LastIndex()
	for n.raft.AppliedIndex() < target {
		select {
		case <-stop:
			return ErrStopped
		case <-n.fsm.Changed():
		case <-time.After(50 * time.Millisecond): // AppliedIndex moves on config entries too
		}
	}
	return nil
}

// IsLeader reports whether this node is the controller.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the controller's node name, or "" when there is none.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// LeaderCh reports leadership gains and losses.
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// FSM returns the node's state machine.
func (n *Node) FSM() *FSM { return n.fsm }

// Barrier waits until every entry committed before it is applied here.
func (n *Node) Barrier(timeout time.Duration) error { return n.raft.Barrier(timeout).Error() }

// Servers returns the Raft configuration: server id to voter or not.
func (n *Node) Servers() (map[string]bool, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = s.Suffrage == raft.Voter
	}
	return out, nil
}

// AddServer adds a node as a voter or non-voter. Leader only.
func (n *Node) AddServer(name, addr string, voter bool) error {
	var f raft.IndexFuture
	if voter {
		f = n.raft.AddVoter(raft.ServerID(name), raft.ServerAddress(addr), 0, 5*time.Second)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(name), raft.ServerAddress(addr), 0, 5*time.Second)
	}
	return f.Error()
}

// Snapshot takes a Raft snapshot now (Raft also takes them by itself).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// TransferLeadership hands the controller role to another voter.
func (n *Node) TransferLeadership() error { return n.raft.LeadershipTransfer().Error() }

// Shutdown stops Raft and closes its files.
func (n *Node) Shutdown() error {
	err := n.raft.Shutdown().Error()
	return errors.Join(err, n.transport.Close(), n.store.Close())
}

// slogWriter routes a library's log lines into slog at debug level (Raft's
// warnings included: they are expected noise during elections).
type slogWriter struct{ l *slog.Logger }

var _ io.Writer = slogWriter{}

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)), "component", "raft")
	return len(p), nil
}
