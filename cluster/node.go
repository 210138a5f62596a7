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
	// ElectionTimeout is Raft's heartbeat and election timeout: how long
	// followers wait for a leader before electing another. 0 keeps Raft's
	// default (1 s), right between machines; nodes on one host can use
	// less.
	ElectionTimeout time.Duration
	Logger          *slog.Logger
}

// DefaultVoters is how many nodes become Raft voters unless configured
// otherwise: three survive the loss of one.
const DefaultVoters = 3

// Node is one member of the metadata Raft group.
type Node struct {
	cfg      Config
	fsm      *FSM
	hadState bool // Raft state on disk when opened
	// leaseTimeout is Raft's leader lease timeout, which it does not
	// let the heartbeat timeout go below.
	leaseTimeout time.Duration
	raft         *raft.Raft
	transport    *raft.NetworkTransport
	store        *raftboltdb.BoltStore
	log          *slog.Logger
}

// DefaultConfig returns the defaults; NodeName, BindAddr and Dir must
// still be filled in.
func DefaultConfig() Config { return Config{Voters: DefaultVoters} }

// Validate checks the settings and fills the logger.
func (c *Config) Validate() error {
	switch {
	case c.NodeName == "" || c.Dir == "" || c.BindAddr == "":
		return fmt.Errorf("%w: node name, bind address and dir are required", ErrInvalidConfig)
	case c.Voters < 1:
		return fmt.Errorf("%w: voters %d, want at least 1", ErrInvalidConfig, c.Voters)
	case c.ElectionTimeout < 0:
		return fmt.Errorf("%w: election timeout %v", ErrInvalidConfig, c.ElectionTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Open starts Raft on the data in cfg.Dir.
func Open(cfg Config, fsm *FSM) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: slogWriter{cfg.Logger}, Level: hclog.Warn})
	rc.SnapshotThreshold = 1024
	if t := cfg.ElectionTimeout; t > 0 {
		rc.HeartbeatTimeout, rc.ElectionTimeout = t, t
		rc.LeaderLeaseTimeout = min(rc.LeaderLeaseTimeout, t/2)
		rc.CommitTimeout = min(rc.CommitTimeout, t/30)
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
	if advAddr.Port == 0 {
		// Port 0 takes a free port: advertise what the listener got.
		if adv != cfg.BindAddr {
			return nil, fmt.Errorf("%w: raft advertise address %q has port 0 but differs from the bind address", ErrInvalidConfig, adv)
		}
		advAddr = nil
	}
	// MaxRPCsInFlight 1: no AppendEntries pipeline. Metadata traffic is
	// light, and a pipeline whose follower stops answering can leave
	// Raft's shutdown waiting forever on its in-flight queue (seen: a
	// broker's Close hung behind it in a rolling restart).
	var advertise net.Addr
	if advAddr != nil {
		advertise = advAddr
	}
	transport, err := raft.NewTCPTransportWithConfig(cfg.BindAddr, advertise, &raft.NetworkTransportConfig{
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
	n := &Node{cfg: cfg, fsm: fsm, hadState: has, leaseTimeout: rc.LeaderLeaseTimeout, raft: r, transport: transport, store: store, log: cfg.Logger}
	n.electIfAlone()
	return n, nil
}

// electIfAlone starts an election at once when this node is the only voter
// of its configuration: a one-node cluster starting, bootstrapped or
// restarted. Raft's follower would first wait out a heartbeat timeout
// (1-2 s by default) for a leader that cannot exist, and no other voter
// can split a lone voter's vote (etcd fast-forwards its election ticks in
// the same case). Raft has no call for it, but lowering the heartbeat
// timeout makes a follower re-arm its timer at once, and a follower that
// has never heard from a leader then stands for election; the timeout is
// set back right after (the re-armed timer reads it when it fires, and the
// timeout passed since no contact either way). The lowest value Raft
// accepts is the leader lease timeout.
func (n *Node) electIfAlone() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters, self := 0, false
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
			self = self || s.ID == raft.ServerID(n.cfg.NodeName)
		}
	}
	if voters != 1 || !self {
		return
	}
	normal := n.raft.ReloadableConfig()
	fast := normal
	fast.HeartbeatTimeout = n.leaseTimeout
	if fast.HeartbeatTimeout >= normal.HeartbeatTimeout {
		return
	}
	if err := n.raft.ReloadConfig(fast); err != nil {
		n.log.Warn("raft: could not hasten the election of a lone voter", "err", err)
		return
	}
	if err := n.raft.ReloadConfig(normal); err != nil {
		n.log.Error("raft: could not restore the heartbeat timeout", "timeout", normal.HeartbeatTimeout, "err", err)
	}
}

// Addr is the Raft address other nodes dial.
func (n *Node) Addr() string { return string(n.transport.LocalAddr()) }

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
	n.electIfAlone()
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
	// Raft's future cannot be cancelled: the caller stops waiting when ctx
	// ends (the command may still commit, as a timed-out Kafka request
	// may), and the waiter ends with the future, within timeout.
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("cluster: apply %s: %w", typ, ctx.Err())
	case err = <-done:
	}
	if err != nil {
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

// RemoveServer takes a node out of the Raft configuration. Leader only.
func (n *Node) RemoveServer(name string) error {
	return n.raft.RemoveServer(raft.ServerID(name), 0, 5*time.Second).Error()
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
