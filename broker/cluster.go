package broker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/group"
	"github.com/mlog/mlog/internal/brokerclient"
	"github.com/mlog/mlog/membership"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
	"github.com/mlog/mlog/replication"
	"github.com/mlog/mlog/txn"
)

type partKey = replication.Key

// clusterParts is what makes the broker a cluster member: Raft metadata,
// Serf membership, replicas and their fetchers.
type clusterParts struct {
	cfg     ClusterConfig
	fsm     *cluster.FSM
	node    *cluster.Node
	ctrl    *cluster.Controller
	members *membership.Membership

	mu        sync.Mutex // parts, fetchers, clients, proposing, pid block, paused, closing
	parts     map[partKey]*partition.Partition
	fetchers  map[int32]*replication.Fetcher
	clients   map[string]*brokerclient.Client
	proposing map[partKey]bool
	pidNext   int64
	pidEnd    int64

	// reconcileMu makes reconciles one at a time: they open and close
	// replicas outside mu.
	reconcileMu sync.Mutex
	// logCfg is, by replica, the live log settings last applied
	// (liveLogKey); reconcileMu.
	logCfg map[partKey]string
	// throttle bounds the fetches of replicas being added, over every
	// fetcher (follower.replication.throttled.rate).
	throttle *replication.Throttle
	// kick wakes the reconcile loop (metadata caught up).
	kick chan struct{}

	// incarnation names this process to the cluster (a Serf tag). Until the
	// metadata has registered it, this broker acts on no role: after a
	// restart, perhaps on an empty disk, the metadata may still name it
	// leader in its old epoch, or count it in ISRs it no longer fills.
	incarnation string

	ready atomic.Bool // metadata caught up with the local Raft log
	// reconciled is the metadata the local replicas last matched.
	reconciled atomic.Pointer[cluster.State]
	paused     bool // replication held back (tests); applies to new fetchers too (mu)
	closing    bool // shutdown began: no new replicas, fetchers or proposals (mu)
}

func newClusterParts(cfg ClusterConfig) *clusterParts {
	return &clusterParts{cfg: cfg, fsm: cluster.NewFSM(), parts: map[partKey]*partition.Partition{}, incarnation: newClusterID()[:16],
		fetchers: map[int32]*replication.Fetcher{}, clients: map[string]*brokerclient.Client{}, proposing: map[partKey]bool{},
		kick: make(chan struct{}, 1), logCfg: map[partKey]string{}, throttle: &replication.Throttle{}}
}

// startRaft opens this node's Raft. Until its metadata has caught up with
// the Raft log it had from an earlier run, topics it does not know yet are
// answered as LEADER_NOT_AVAILABLE (clients retry), never as unknown. Its
// stop step joins every loop, closes fetchers, Raft and every replica.
func (b *Broker) startRaft() (func(bool) error, error) {
	cl, cc := b.cl, b.cfg.Cluster
	raftAdv, err := advertiseAddr(cc.RaftAddr, cc.AdvertiseHost)
	if err != nil {
		return nil, err
	}
	ccfg := cluster.DefaultConfig()
	ccfg.NodeName, ccfg.BindAddr, ccfg.AdvertiseAddr, ccfg.Dir = b.cfg.NodeID, cc.RaftAddr, raftAdv, filepath.Join(b.cfg.DataDir, "raft")
	ccfg.Bootstrap, ccfg.Voters, ccfg.Logger = cc.Bootstrap && len(cc.Peers) == 0, cc.Voters, b.log
	if cc.Network == NetworkLocal {
		ccfg.ElectionTimeout = 300 * time.Millisecond
	}
	if cl.node, err = cluster.Open(ccfg, cl.fsm); err != nil {
		return nil, err
	}
	b.goTracked(func() {
		if err := cl.node.WaitCaughtUp(b.ctx.Done()); err == nil {
			cl.ready.Store(true)
			b.changed.Broadcast()
			select {
			case cl.kick <- struct{}{}:
			default:
			}
		}
	})
	return b.stopCluster, nil
}

// startMembership joins Serf (with the Kafka listener's address in the
// tags) and starts the controller and the loops that follow metadata.
func (b *Broker) startMembership() (func(bool) error, error) {
	cl, cc := b.cl, b.cfg.Cluster
	raftAdv := cl.node.Addr()
	mcfg := membership.DefaultConfig()
	mcfg.NodeName, mcfg.BindAddr, mcfg.AdvertiseAddr, mcfg.Peers, mcfg.Logger = b.cfg.NodeID, cc.SerfAddr, cc.AdvertiseHost, cc.Peers, b.log
	mcfg.Local = cc.Network == NetworkLocal
	mcfg.Tags = map[string]string{cluster.TagID: strconv.Itoa(int(b.nodeID)), cluster.TagKafka: b.advertisedAddr(b.interBrokerIndex()),
		cluster.TagListeners: b.advertisedListeners(), cluster.TagHTTP: b.httpURL(),
		cluster.TagRaft: raftAdv, cluster.TagIncarnation: cl.incarnation, cluster.TagRaftState: "0", cluster.TagRack: cc.Rack}
	if cl.node.HadState() {
		mcfg.Tags[cluster.TagRaftState] = "1"
	}
	var boot *cluster.AlterScram
	if b.cfg.BootstrapUser != "" {
		alter, err := b.bootstrapUser()
		if err != nil {
			return nil, err
		}
		boot = &alter
	}
	members, err := membership.New(mcfg)
	if err != nil {
		return nil, err
	}
	b.cl.mu.Lock()
	cl.members = members
	b.cl.mu.Unlock()
	cl.ctrl = cluster.NewController(cl.node, b.clusterMembers, cc.Voters, b.log)
	if boot != nil {
		cl.ctrl.SetBootstrapUser(*boot)
	}
	cl.ctrl.SetClusterID(b.clusterID)
	cl.ctrl.SetLeaderImbalanceInterval(cc.LeaderImbalanceCheckInterval)
	cl.ctrl.Start()
	if !cl.node.HadState() {
		b.goTracked(func() { b.joinOrBootstrap(mcfg.Tags) })
	}
	b.goTracked(b.membershipLoop)
	b.goTracked(b.reconcileLoop)
	b.goTracked(b.isrLoop)
	b.goTracked(b.checkpointLoop)
	return func(graceful bool) error {
		cl.ctrl.Stop()
		if graceful {
			return members.Leave() // others see a leave, not a failure
		}
		return members.Shutdown()
	}, nil
}

// joinOrBootstrap runs on a node that started without Raft state. A
// --bootstrap node founds the cluster only if no peer that answers its
// first join already belongs to one: a bootstrap node whose disk was wiped
// rejoins its cluster instead of starting a second one beside it. (If no
// peer answers at all it cannot tell, and bootstraps.) Once the node holds
// Raft state, its raft_state tag says so to the others.
func (b *Broker) joinOrBootstrap(tags map[string]string) {
	cl := b.cl
	if cl.cfg.Bootstrap && len(cl.cfg.Peers) > 0 {
		select {
		case <-b.ctx.Done():
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
		case <-b.ctx.Done():
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
	t := time.NewTicker(highWatermarkCheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
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
	for {
		select {
		case <-b.ctx.Done():
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
	for {
		changed := b.cl.fsm.Changed()
		b.reconcile()
		select {
		case <-b.ctx.Done():
			return
		case <-changed:
		case <-b.cl.kick:
		case <-time.After(time.Second): // retry what failed, e.g. a fetcher's leader address
		}
	}
}

// reconcile makes the local replicas match the metadata: replicas
// assigned here are opened and given their role, replicas no longer
// assigned are closed (and their data removed once the topic is gone).
// Opening a replica recovers its log from disk, and closing one flushes
// it: both happen outside cl.mu, which produce and fetch take.
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
	cl.reconcileMu.Lock()
	defer cl.reconcileMu.Unlock()

	// Open what is assigned here and not open yet, without holding mu, a
	// few at a time: creating a partition's files waits on the journal
	// commits of its fsyncs, which concurrent opens share.
	have := b.replicas()
	var toOpen []partKey
	for _, name := range st.TopicNames() {
		for i, pa := range st.Topics[name].Partitions {
			k := partKey{Topic: name, Partition: int32(i)}
			if have[k] == nil && slices.Contains(pa.Replicas, b.nodeID) {
				toOpen = append(toOpen, k)
			}
		}
	}
	openedList := make([]*partition.Partition, len(toOpen))
	parallel(len(toOpen), func(i int) {
		k := toOpen[i]
		p, err := b.openReplica(st, k.Topic, k.Partition)
		if err != nil {
			b.log.Error("open replica", "topic", k.Topic, "partition", k.Partition, "err", err)
			return
		}
		openedList[i] = p
	})
	opened := map[partKey]*partition.Partition{}
	for i, p := range openedList {
		if p != nil {
			opened[toOpen[i]] = p
		}
	}

	// Give every replica its role, also outside mu and a few at a time: a
	// new leader's epoch is fsynced to its leader-epoch-checkpoint.
	type roleChange struct {
		k        partKey
		p        *partition.Partition
		old, new partition.Role
		err      error
	}
	var changes []*roleChange
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for i, pa := range t.Partitions {
			k := partKey{Topic: name, Partition: int32(i)}
			p := opened[k]
			if p == nil {
				p = have[k]
			}
			if p == nil || !slices.Contains(pa.Replicas, b.nodeID) {
				continue
			}
			changes = append(changes, &roleChange{k: k, p: p, new: partition.Role{Self: b.nodeID, LeaderID: pa.Leader, Epoch: pa.LeaderEpoch,
				PartitionEpoch: pa.PartitionEpoch, Replicas: pa.Replicas, ISR: pa.ISR, MinISR: minISR(t, len(pa.TargetReplicas())),
				LagMax: cl.cfg.ReplicaLagMax, Unclean: t.Configs["unclean.leader.election.enable"] == "true"}})
		}
	}
	parallel(len(changes), func(i int) {
		c := changes[i]
		c.old = c.p.Role()
		if c.err = c.p.SetRole(c.new); c.err != nil {
			b.log.Error("set replica role", "topic", c.k.Topic, "partition", c.k.Partition, "err", c.err)
		}
	})
	topicLogs := map[string]topicLog{} // each topic's settings, computed once per reconcile
	for _, c := range changes {
		b.applyLogConfig(st, c.k, c.p, topicLogs)
	}
	if cl.throttle.SetRate(b.throttleRate(st)) {
		cl.mu.Lock()
		for _, f := range cl.fetchers {
			f.Poke()
		}
		cl.mu.Unlock()
	}

	cl.mu.Lock()
	if cl.closing {
		cl.mu.Unlock()
		for _, p := range opened {
			_ = p.Close()
		}
		return
	}
	maps.Copy(cl.parts, opened)
	want := map[partKey]bool{}
	for _, c := range changes { // cl.parts holds each c.p: only reconciles (reconcileMu) change it
		want[c.k] = true
		if c.err != nil {
			continue
		}
		if c.old.Leader() && c.new.Leader() && c.old.Epoch == c.new.Epoch {
			// The ISR of a partition led here changed, whoever
			// proposed it (this leader, or the controller fencing a
			// dead broker): Kafka's IsrShrinks / IsrExpands.
			b.metrics.ISRChanged(len(c.old.ISR), len(c.new.ISR))
		}
		switch c.k.Topic {
		case group.OffsetsTopic:
			b.electOffsets(c.k.Partition, c.p, c.p.Role().Leader())
		case txn.StateTopic:
			b.electTxns(c.k.Partition, c.p, c.p.Role().Leader())
		}
		b.followLocked(c.k, c.p, c.new, st)
	}
	removed := map[partKey]*partition.Partition{}
	for k, p := range cl.parts {
		if want[k] {
			continue
		}
		b.unfollowLocked(k)
		switch k.Topic {
		case group.OffsetsTopic:
			b.electOffsets(k.Partition, p, false)
		case txn.StateTopic:
			b.electTxns(k.Partition, p, false)
		}
		removed[k] = p
		delete(cl.parts, k)
	}
	for id, f := range cl.fetchers {
		if f.Empty() {
			f.Close()
			delete(cl.fetchers, id)
		}
	}
	cl.mu.Unlock()

	for k, p := range removed {
		_ = p.Close()
		delete(cl.logCfg, k)
		// The topic is gone, or a reassignment moved this replica
		// elsewhere: its data goes too, as Kafka's StopReplica(delete).
		if t, ok := st.Topics[k.Topic]; !ok || int(k.Partition) >= len(t.Partitions) || !slices.Contains(t.Partitions[k.Partition].Replicas, b.nodeID) {
			b.removePartitionDir(k)
		}
	}
	cl.reconciled.Store(st)
	b.changed.Broadcast()
}

// reconcileParallelism bounds the replicas opened, or given their roles,
// at once.
const reconcileParallelism = 16

// parallel runs work(0..n-1) on up to reconcileParallelism goroutines and
// returns when all are done.
func parallel(n int, work func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(n, reconcileParallelism) {
		wg.Go(func() {
			for i := range next {
				work(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// removePartitionDir deletes a deleted topic's replica: renamed first, so
// a crash part way leaves a "-delete" directory start-up removes, never a
// half-deleted log that looks live.
func (b *Broker) removePartitionDir(k partKey) {
	dir := b.partitionDir(k.Topic, k.Partition)
	del := dir + "-delete"
	if err := os.RemoveAll(del); err == nil {
		err = os.Rename(dir, del)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			err = os.RemoveAll(del)
		}
		if err == nil {
			return
		}
	}
	b.log.Warn("remove deleted partition", "topic", k.Topic, "partition", k.Partition, "dir", dir)
}

func minISR(t *cluster.Topic, rf int) int {
	if v, err := strconv.Atoi(t.Configs["min.insync.replicas"]); err == nil && v > 0 {
		return v
	}
	return defaultMinISR(rf)
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
		f = replication.NewFetcher(b.nodeID, r.LeaderID, leader.KafkaAddr, replicaClientID(b.nodeID, cl.incarnation), b.peerSecurity(), cl.cfg.ReplicaFetchBytes, b.log)
		f.SetThrottle(cl.throttle)
		f.Pause(cl.paused)
		cl.fetchers[r.LeaderID] = f
	}
	for id, other := range cl.fetchers {
		if id != r.LeaderID {
			other.Unfollow(k)
		}
	}
	throttled := false
	if t := st.Topics[k.Topic]; t != nil && int(k.Partition) < len(t.Partitions) {
		throttled = slices.Contains(t.Partitions[k.Partition].AddingReplicas, b.nodeID)
	}
	f.Follow(k, p, r.Epoch, throttled)
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
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
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
	b.wg.Add(1) // under mu, after closing was checked: shutdown's Wait sees it
	cl.mu.Unlock()
	r := p.Role()
	isr := prop.ISR
	change := protocol.ISRChange{Topic: k.Topic, Partition: k.Partition, Leader: b.nodeID, LeaderEpoch: r.Epoch, PartitionEpoch: prop.PartitionEpoch, ISR: isr}
	go func() {
		defer b.wg.Done()
		defer func() {
			cl.mu.Lock()
			delete(cl.proposing, k)
			cl.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		err := controllerClient{b}.AlterPartition(ctx, change)
		if err != nil {
			b.log.Debug("ISR change not applied", "topic", k.Topic, "partition", k.Partition, "isr", isr, "err", err)
			return
		}
		b.log.Info("ISR changed", "topic", k.Topic, "partition", k.Partition, "from", r.ISR, "to", isr)
	}()
}

// stopReplication stops fetching and forwarding, first thing in a
// shutdown: a stopping broker must not go on replicating (and stay in
// ISRs) while the rest winds down. With closing set no reconcile makes
// fetchers, and no forward makes clients, any more.
func (cl *clusterParts) stopReplication() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.closing = true
	for id, f := range cl.fetchers {
		f.Close()
		delete(cl.fetchers, id)
	}
	for addr, c := range cl.clients {
		_ = c.Close()
		delete(cl.clients, addr)
	}
}

// stopCluster undoes startRaft, last in shutdown: the root context is
// cancelled by then, so it waits for every loop and proposal, closes the
// fetchers and controller clients, shuts Raft down and closes every
// replica.
func (b *Broker) stopCluster(bool) error {
	cl := b.cl
	cl.stopReplication()
	b.cancel()
	b.wg.Wait()
	err := cl.node.Shutdown()
	cl.reconcileMu.Lock() // a reconcile that began before closing has finished
	defer cl.reconcileMu.Unlock()
	cl.mu.Lock()
	parts := slices.Collect(maps.Values(cl.parts))
	clear(cl.parts)
	cl.mu.Unlock()
	// Closing a replica fsyncs it and rewrites its checkpoints: a few at a
	// time, as they were opened.
	errs := make([]error, len(parts))
	parallel(len(parts), func(i int) { errs[i] = parts[i].Close() })
	return errors.Join(append(errs, err)...)
}
