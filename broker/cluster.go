package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/group"
	"github.com/mlog/mlog/membership"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
	"github.com/mlog/mlog/replication"
)

// ClusterConfig turns a broker into a cluster member: Serf for membership,
// Raft for metadata, pull replication between brokers.
type ClusterConfig struct {
	// SerfAddr is where Serf listens (--bind-addr).
	SerfAddr string
	// AdvertiseHost is the host other nodes and clients use for this node;
	// the listen hosts when empty.
	AdvertiseHost string
	// Peers are other nodes' Serf host:port, joined in the background.
	Peers []string
	// RaftAddr is where Raft listens (--raft-addr).
	RaftAddr string
	// Bootstrap makes this node start a new cluster when it has no state.
	Bootstrap bool
	// Voters is how many nodes become Raft voters (--raft-voters).
	Voters int
	// ReplicaLagMax drops a follower from the ISR when it has not caught up
	// for this long (replica.lag.time.max.ms).
	ReplicaLagMax time.Duration
	// ReplicaFetchBytes bounds one replica fetch.
	ReplicaFetchBytes int32
	// Rack is broker.rack: Metadata reports it, and a leader sends a
	// consumer that names the same rack (client.rack) to an in-sync
	// replica there (KIP-392 follower fetching).
	Rack string
	// Fast uses short Serf and Raft timeouts, for tests on one machine.
	Fast bool
}

type partKey = replication.Key

// clusterParts is a cluster member's state beyond a standalone broker's.
type clusterParts struct {
	cfg     ClusterConfig
	fsm     *cluster.FSM
	node    *cluster.Node
	ctrl    *cluster.Controller
	members *membership.Membership

	mu        sync.Mutex // parts, fetchers, clients, proposing, pid block
	parts     map[partKey]*partition.Partition
	fetchers  map[int32]*replication.Fetcher
	clients   map[string]*protocol.Client
	proposing map[partKey]bool
	pidNext   int64
	pidEnd    int64

	// incarnation names this process to the cluster (a Serf tag). Until the
	// metadata has registered it, this broker acts on no role: after a
	// restart, perhaps on an empty disk, the metadata may still name it
	// leader in its old epoch, or count it in ISRs it no longer fills.
	incarnation string

	ready   atomic.Bool // metadata caught up with the local Raft log
	paused  bool        // replication held back (tests); applies to new fetchers too (mu)
	closing bool        // stopCluster began: no new fetchers or proposals (mu)

	stop chan struct{}
	wg   sync.WaitGroup
}

// errNoController means no controller is known yet (an election is on).
var errNoController = errors.New("broker: no controller elected yet")

// startRaft opens this node's Raft. Until its metadata has caught up with
// the Raft log it had from an earlier run, topics it does not know yet are
// answered as LEADER_NOT_AVAILABLE (clients retry), never as unknown.
func (b *Broker) startRaft() error {
	cc := b.cfg.Cluster
	if cc.Voters < 1 {
		cc.Voters = 3
	}
	if cc.ReplicaLagMax <= 0 {
		cc.ReplicaLagMax = 10 * time.Second
	}
	if cc.ReplicaFetchBytes <= 0 {
		cc.ReplicaFetchBytes = 8 << 20
	}
	cl := &clusterParts{cfg: *cc, fsm: cluster.NewFSM(), parts: map[partKey]*partition.Partition{}, incarnation: newClusterID()[:16],
		fetchers: map[int32]*replication.Fetcher{}, clients: map[string]*protocol.Client{}, proposing: map[partKey]bool{},
		stop: make(chan struct{})}
	b.cl = cl
	raftAdv, err := advertiseAddr(cc.RaftAddr, cc.AdvertiseHost)
	if err != nil {
		return err
	}
	cl.node, err = cluster.Open(cluster.Config{NodeName: b.cfg.NodeID, BindAddr: cc.RaftAddr, AdvertiseAddr: raftAdv,
		Dir: filepath.Join(b.cfg.DataDir, "raft"), Bootstrap: cc.Bootstrap && len(cc.Peers) == 0, Voters: cc.Voters, Fast: cc.Fast, Logger: b.log}, cl.fsm)
	if err != nil {
		return err
	}
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		if err := cl.node.WaitCaughtUp(cl.stop); err == nil {
			cl.ready.Store(true)
			b.changed.Broadcast()
			b.reconcile()
		}
	}()
	return nil
}

// startMembership joins Serf (with the Kafka listener's address in the
// tags) and starts the controller and the loops that follow metadata.
func (b *Broker) startMembership() error {
	cl, cc := b.cl, b.cl.cfg
	raftAdv, err := advertiseAddr(cc.RaftAddr, cc.AdvertiseHost)
	if err != nil {
		return err
	}
	host, port := b.advertised()
	serfAdv := cc.AdvertiseHost
	mcfg := membership.DefaultConfig()
	mcfg.NodeName, mcfg.BindAddr, mcfg.AdvertiseAddr, mcfg.Peers, mcfg.Fast, mcfg.Logger = b.cfg.NodeID, cc.SerfAddr, serfAdv, cc.Peers, cc.Fast, b.log
	mcfg.Tags = map[string]string{cluster.TagID: strconv.Itoa(int(b.nodeID)), cluster.TagKafka: net.JoinHostPort(host, strconv.Itoa(int(port))),
		cluster.TagRaft: raftAdv, cluster.TagIncarnation: cl.incarnation, cluster.TagRaftState: "0", cluster.TagRack: cc.Rack}
	if cl.node.HadState() {
		mcfg.Tags[cluster.TagRaftState] = "1"
	}
	cl.members, err = membership.New(mcfg)
	if err != nil {
		return err // Start undoes Raft
	}
	cl.ctrl = cluster.NewController(cl.node, b.clusterMembers, cc.Voters, b.log)
	cl.ctrl.Start()
	if !cl.node.HadState() {
		cl.wg.Add(1)
		go b.joinOrBootstrap(mcfg.Tags)
	}
	cl.wg.Add(4)
	go b.membershipLoop()
	go b.reconcileLoop()
	go b.isrLoop()
	go b.checkpointLoop()
	return nil
}

// joinOrBootstrap runs on a node that started without Raft state. A
// --bootstrap node founds the cluster only if no peer that answers its
// first join already belongs to one: a bootstrap node whose disk was wiped
// rejoins its cluster instead of starting a second one beside it. (If no
// peer answers at all it cannot tell, and bootstraps.) Once the node holds
// Raft state, its raft_state tag says so to the others.
func (b *Broker) joinOrBootstrap(tags map[string]string) {
	cl := b.cl
	defer cl.wg.Done()
	if cl.cfg.Bootstrap && len(cl.cfg.Peers) > 0 {
		select {
		case <-cl.stop:
			return
		case <-cl.members.FirstJoin():
		}
		existing := ""
		for _, m := range cl.members.Members() {
			if m.Name != b.cfg.NodeID && m.Status == membership.StatusAlive && m.Tags[cluster.TagRaftState] == "1" {
				existing = m.Name
			}
		}
		if existing != "" {
			b.log.Warn("not bootstrapping: this node has no Raft state but its peers already form a cluster; joining it", "peer", existing)
		} else if err := cl.node.Bootstrap(); err != nil {
			b.log.Error("bootstrap", "err", err)
		} else {
			b.log.Info("bootstrapped a new cluster")
		}
	}
	for !cl.node.HasState() {
		select {
		case <-cl.stop:
			return
		case <-cl.fsm.Changed():
		case <-time.After(250 * time.Millisecond): // config entries move the log without an apply
		}
	}
	t := maps.Clone(tags)
	t[cluster.TagRaftState] = "1"
	if err := cl.members.SetTags(t); err != nil {
		b.log.Warn("set raft_state tag", "err", err)
	}
}

// highWatermarkCheckpointInterval is Kafka's
// replica.high.watermark.checkpoint.interval.ms (5 s there): how stale the
// high watermark a killed broker restarts with may be.
const highWatermarkCheckpointInterval = time.Second

// checkpointLoop writes every replica's high watermark to partition.state
// periodically, so a broker killed without a clean close restarts knowing
// what was committed (a follower never truncates below it).
func (b *Broker) checkpointLoop() {
	defer b.cl.wg.Done()
	t := time.NewTicker(highWatermarkCheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-b.cl.stop:
			return
		case <-t.C:
			for k, p := range b.replicas() {
				if err := p.CheckpointHighWatermark(); err != nil {
					b.log.Warn("checkpoint high watermark", "topic", k.Topic, "partition", k.Partition, "err", err)
				}
			}
		}
	}
}

// replicas returns the replicas this broker holds now; their disk work
// runs outside cl.mu.
func (b *Broker) replicas() map[partKey]*partition.Partition {
	b.cl.mu.Lock()
	defer b.cl.mu.Unlock()
	parts := make(map[partKey]*partition.Partition, len(b.cl.parts))
	for k, p := range b.cl.parts {
		parts[k] = p
	}
	return parts
}

// registered reports whether the metadata knows this broker's current
// incarnation: only then may it lead or follow. (Marked dead later, it is
// fenced by the metadata itself: its roles move away.)
func (b *Broker) registered(st *cluster.State) bool {
	br := st.Brokers[b.nodeID]
	return br != nil && br.Incarnation == b.cl.incarnation
}

// replicaClientID is the client id a follower fetches with: it carries the
// broker's incarnation, which the leader checks against the metadata.
func replicaClientID(id int32, incarnation string) string {
	return fmt.Sprintf("mlog-replica-%d-%s", id, incarnation)
}

// AuthorizeReplica accepts a follower's request only from the current
// incarnation of a registered broker: a client claiming a replica id, or a
// broker's previous process, moves no ISR and no high watermark.
func (b *Broker) AuthorizeReplica(replica int32, clientID string) error {
	if b.cl == nil {
		return fmt.Errorf("%w: broker %d: this broker has no followers", protocol.ErrReplicaNotAuthorized, replica)
	}
	br, ok := b.cl.fsm.Broker(replica)
	if !ok || !br.Alive || replica == b.nodeID || clientID != replicaClientID(replica, br.Incarnation) {
		return fmt.Errorf("%w: broker %d (client id %q)", protocol.ErrReplicaNotAuthorized, replica, clientID)
	}
	return nil
}

func advertiseAddr(bind, host string) (string, error) {
	h, p, err := net.SplitHostPort(bind)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrInvalidConfig, bind, err)
	}
	if host != "" {
		h = host
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		if h, err = os.Hostname(); err != nil {
			return "", err
		}
	}
	return net.JoinHostPort(h, p), nil
}

func (b *Broker) clusterMembers() []cluster.Member {
	var out []cluster.Member
	for _, m := range b.cl.members.Members() {
		out = append(out, cluster.Member{Name: m.Name, Alive: m.Status == membership.StatusAlive, Tags: m.Tags})
	}
	return out
}

func (b *Broker) membershipLoop() {
	defer b.cl.wg.Done()
	for {
		select {
		case <-b.cl.stop:
			return
		case ev, ok := <-b.cl.members.Events():
			if !ok {
				return
			}
			b.log.Debug("membership event", "type", ev.Type.String(), "member", ev.Member.Name)
			b.cl.ctrl.Wake()
		}
	}
}

// reconcileLoop applies every metadata change to the local replicas.
func (b *Broker) reconcileLoop() {
	defer b.cl.wg.Done()
	for {
		changed := b.cl.fsm.Changed()
		b.reconcile()
		select {
		case <-b.cl.stop:
			return
		case <-changed:
		case <-time.After(time.Second): // retry what failed, e.g. a fetcher's leader address
		}
	}
}

func (b *Broker) reconcile() {
	cl := b.cl
	if !cl.ready.Load() {
		// Roles from a half-replayed log (a snapshot's old epochs) could
		// truncate committed records: wait for the replay.
		return
	}
	st := cl.fsm.State()
	if !b.registered(st) {
		// Not yet registered in this incarnation: the controller fences
		// the old one (out of every ISR, out of leadership) when it
		// registers this one, and the roles that follow are safe.
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closing {
		return
	}
	want := map[partKey]bool{}
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for i, pa := range t.Partitions {
			if !slices.Contains(pa.Replicas, b.nodeID) {
				continue
			}
			k := partKey{Topic: name, Partition: int32(i)}
			want[k] = true
			p := cl.parts[k]
			if p == nil {
				var err error
				if p, err = b.openReplica(t, int32(i)); err != nil {
					b.log.Error("open replica", "topic", name, "partition", i, "err", err)
					continue
				}
				cl.parts[k] = p
			}
			role := partition.Role{Self: b.nodeID, LeaderID: pa.Leader, Epoch: pa.LeaderEpoch, PartitionEpoch: pa.PartitionEpoch,
				Replicas: pa.Replicas, ISR: pa.ISR, MinISR: minISR(t, len(pa.Replicas)), LagMax: cl.cfg.ReplicaLagMax,
				Unclean: t.Configs["unclean.leader.election.enable"] == "true"}
			if err := p.SetRole(role); err != nil {
				b.log.Error("set replica role", "topic", name, "partition", i, "err", err)
				continue
			}
			if name == group.OffsetsTopic {
				b.electOffsets(int32(i), p, p.Role().Leader())
			}
			b.followLocked(k, p, role, st)
		}
	}
	for k, p := range cl.parts {
		if want[k] {
			continue
		}
		b.unfollowLocked(k)
		if k.Topic == group.OffsetsTopic {
			b.electOffsets(k.Partition, p, false)
		}
		_ = p.Close()
		delete(cl.parts, k)
		if _, ok := st.Topics[k.Topic]; !ok {
			if err := os.RemoveAll(b.partitionDir(k.Topic, k.Partition)); err != nil {
				b.log.Warn("remove deleted partition", "topic", k.Topic, "partition", k.Partition, "err", err)
			}
		}
	}
	for id, f := range cl.fetchers {
		if f.Empty() {
			f.Close()
			delete(cl.fetchers, id)
		}
	}
	b.changed.Broadcast()
}

func minISR(t *cluster.Topic, rf int) int {
	if v, err := strconv.Atoi(t.Configs["min.insync.replicas"]); err == nil && v > 0 {
		return v
	}
	if rf >= 3 {
		return 2
	}
	return 1
}

func (b *Broker) openReplica(t *cluster.Topic, id int32) (*partition.Partition, error) {
	return b.openLocal(t.Name, id, t.Configs, true)
}

// followLocked points the partition's fetch at its leader. Caller holds cl.mu.
func (b *Broker) followLocked(k partKey, p *partition.Partition, r partition.Role, st *cluster.State) {
	cl := b.cl
	if r.Leader() || r.LeaderID == cluster.NoLeader {
		b.unfollowLocked(k)
		return
	}
	leader := st.Brokers[r.LeaderID]
	if leader == nil {
		b.unfollowLocked(k)
		return
	}
	f := cl.fetchers[r.LeaderID]
	if f != nil && f.Addr() != leader.KafkaAddr {
		f.Close()
		f = nil
	}
	if f == nil {
		f = replication.NewFetcher(b.nodeID, r.LeaderID, leader.KafkaAddr, replicaClientID(b.nodeID, cl.incarnation), cl.cfg.ReplicaFetchBytes, b.log)
		f.Pause(cl.paused)
		cl.fetchers[r.LeaderID] = f
	}
	for id, other := range cl.fetchers {
		if id != r.LeaderID {
			other.Unfollow(k)
		}
	}
	f.Follow(k, p, r.Epoch)
}

func (b *Broker) unfollowLocked(k partKey) {
	for _, f := range b.cl.fetchers {
		f.Unfollow(k)
	}
}

// pauseReplication holds this broker's fetching back, or lets it go on.
// Tests use it to give a leader records its followers do not have.
func (b *Broker) pauseReplication(paused bool) {
	b.cl.mu.Lock()
	defer b.cl.mu.Unlock()
	b.cl.paused = paused
	for _, f := range b.cl.fetchers {
		f.Pause(paused)
	}
}

// replicationParked reports whether every fetcher is paused and idle.
func (b *Broker) replicationParked() bool {
	b.cl.mu.Lock()
	defer b.cl.mu.Unlock()
	for _, f := range b.cl.fetchers {
		if !f.Parked() {
			return false
		}
	}
	return true
}

// isrLoop drops lagging followers from the ISRs this broker leads.
func (b *Broker) isrLoop() {
	defer b.cl.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.cl.stop:
			return
		case now := <-t.C:
			for k, p := range b.replicas() {
				if prop := p.LaggingISR(now, b.cl.cfg.ReplicaLagMax); prop != nil {
					b.proposeISR(k, p, prop)
				}
			}
		}
	}
}

// proposeISR sends an ISR change to the controller, one at a time per
// partition; the metadata update that follows sets the new role.
func (b *Broker) proposeISR(k partKey, p *partition.Partition, prop *partition.ISRProposal) {
	cl := b.cl
	cl.mu.Lock()
	if cl.proposing[k] || cl.closing {
		cl.mu.Unlock()
		return
	}
	cl.proposing[k] = true
	cl.wg.Add(1) // under mu, so it never races stopCluster's Wait
	cl.mu.Unlock()
	r := p.Role()
	isr := prop.ISR
	change := protocol.ISRChange{Topic: k.Topic, Partition: k.Partition, Leader: b.nodeID, LeaderEpoch: r.Epoch, PartitionEpoch: prop.PartitionEpoch, ISR: isr}
	go func() {
		defer cl.wg.Done()
		defer func() {
			cl.mu.Lock()
			delete(cl.proposing, k)
			cl.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		go func() {
			select {
			case <-cl.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := b.sendISRChange(ctx, change)
		if err != nil {
			b.log.Debug("ISR change not applied", "topic", k.Topic, "partition", k.Partition, "isr", isr, "err", err)
			return
		}
		b.metrics.ISRChanged(len(r.ISR), len(isr))
		b.log.Info("ISR changed", "topic", k.Topic, "partition", k.Partition, "from", r.ISR, "to", isr)
	}()
}

func (b *Broker) sendISRChange(ctx context.Context, c protocol.ISRChange) error {
	if b.cl.node.IsLeader() {
		_, err := b.AlterISR(ctx, c)
		return err
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.Version, req.BrokerID = 1, b.nodeID
	rp := kmsg.NewAlterPartitionRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR = c.Partition, c.LeaderEpoch, c.PartitionEpoch, c.ISR
	req.Topics = []kmsg.AlterPartitionRequestTopic{{Topic: c.Topic, Partitions: []kmsg.AlterPartitionRequestTopicPartition{rp}}}
	resp, err := b.toController(ctx, req)
	if err != nil {
		return err
	}
	r := resp.(*kmsg.AlterPartitionResponse)
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return errors.New("broker: malformed AlterPartition response")
	}
	return kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode)
}

// toController sends a request to the controller, waiting out elections
// within ctx.
func (b *Broker) toController(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	backoff := 20 * time.Millisecond
	for {
		resp, err := b.toControllerOnce(ctx, req)
		if err == nil || ctx.Err() != nil {
			return resp, err
		}
		if !errors.Is(err, errNoController) {
			b.log.Debug("request to controller failed; retrying", "api", kmsg.NameForKey(req.Key()), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func (b *Broker) toControllerOnce(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	name := b.cl.node.Leader()
	if name == "" {
		return nil, errNoController
	}
	var addr string
	for _, br := range b.cl.fsm.State().Brokers {
		if br.Name == name {
			addr = br.KafkaAddr
		}
	}
	if addr == "" {
		return nil, errNoController
	}
	b.cl.mu.Lock()
	c := b.cl.clients[addr]
	if c == nil {
		c = protocol.NewClient(addr, "mlog-broker-"+b.cfg.NodeID)
		b.cl.clients[addr] = c
	}
	b.cl.mu.Unlock()
	return c.Request(ctx, req)
}

// stopCluster shuts the cluster parts down in reverse order. A graceful
// stop leaves Serf (others see a leave, not a failure); a kill does not.
func (b *Broker) stopCluster(graceful bool) error {
	cl := b.cl
	var err error
	cl.mu.Lock()
	cl.closing = true
	cl.mu.Unlock()
	close(cl.stop)
	cl.ctrl.Stop()
	if graceful {
		err = errors.Join(err, cl.members.Leave())
	} else {
		err = errors.Join(err, cl.members.Shutdown())
	}
	cl.wg.Wait()
	// The loops have stopped: nothing makes fetchers or clients any more.
	cl.mu.Lock()
	for _, f := range cl.fetchers {
		f.Close()
	}
	for _, c := range cl.clients {
		_ = c.Close()
	}
	cl.mu.Unlock()
	err = errors.Join(err, cl.node.Shutdown())
	cl.mu.Lock()
	for k, p := range cl.parts {
		err = errors.Join(err, p.Close())
		delete(cl.parts, k)
	}
	cl.mu.Unlock()
	return err
}

func (b *Broker) controlledShutdown(ctx context.Context) error {
	if b.cl.node.IsLeader() {
		if err := b.ControlledShutdown(ctx, b.nodeID); err != nil {
			return err
		}
		if servers, err := b.cl.node.Servers(); err == nil && len(servers) > 1 {
			return b.cl.node.TransferLeadership()
		}
		return nil
	}
	req := kmsg.NewPtrControlledShutdownRequest()
	req.Version, req.BrokerID = 1, b.nodeID
	resp, err := b.toController(ctx, req)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.(*kmsg.ControlledShutdownResponse).ErrorCode)
}
