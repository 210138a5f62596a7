package group

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is a group's state in the classic protocol.
type State string

// The states.
const (
	Empty               State = "Empty"
	PreparingRebalance  State = "PreparingRebalance"
	CompletingRebalance State = "CompletingRebalance"
	Stable              State = "Stable"
	Dead                State = "Dead"
)

// Config tunes the coordinator.
type Config struct {
	// InitialRebalanceDelay holds an empty group's first rebalance back
	// so that members starting together join one generation
	// (group.initial.rebalance.delay.ms).
	InitialRebalanceDelay time.Duration
	MinSessionTimeout     time.Duration
	MaxSessionTimeout     time.Duration
	Logger                *slog.Logger
}

// DefaultConfig returns Kafka's defaults, with a shorter initial delay.
func DefaultConfig() Config {
	return Config{InitialRebalanceDelay: 300 * time.Millisecond, MinSessionTimeout: 6 * time.Second,
		MaxSessionTimeout: 30 * time.Minute}
}

// Coordinator coordinates the groups of the offsets partitions this broker
// leads. One mutex guards every group; waits (joins, syncs, commits) happen
// outside it.
type Coordinator struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	shards map[int32]*shard
	stop   chan struct{}
	wg     sync.WaitGroup
}

type shard struct {
	id     int32
	log    Log
	ready  chan struct{} // closed when the replay finished
	err    error         // replay error (set before ready closes)
	groups map[string]*group
	gone   bool // resigned
	// pending are offsets committed inside open transactions, by producer
	// id then group: they count once the producer's commit marker is
	// written here, and are dropped at its abort marker.
	pending map[int64]map[string]map[TopicPartition]Committed
}

// TopicPartition names a partition in a commit.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Committed is one committed offset.
type Committed struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitMs    int64
}

type protocol struct {
	name     string
	metadata []byte
}

type member struct {
	id, instanceID, clientID, clientHost string
	sessionTimeout, rebalanceTimeout     time.Duration
	protocolType                         string
	protocols                            []protocol
	assignment                           []byte
	lastSeen                             time.Time
	joined                               bool // rejoined in the current rebalance
	joinWait                             chan kmsg.JoinGroupResponse
	syncWait                             chan kmsg.SyncGroupResponse
	order                                int // join order, for choosing a leader
}

type group struct {
	name         string
	state        State
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	pendingIDs   map[string]bool // ids handed out with MEMBER_ID_REQUIRED
	offsets      map[TopicPartition]Committed
	deadline     time.Time // of the current rebalance
	initialUntil time.Time // initial delay of an empty group's first rebalance
	joinCounter  int
}

// ErrInvalidConfig means a Config failed Validate.
var ErrInvalidConfig = errors.New("group: invalid config")

// Validate checks the settings and fills the logger.
func (c *Config) Validate() error {
	switch {
	case c.InitialRebalanceDelay < 0:
		return fmt.Errorf("%w: initial rebalance delay %v", ErrInvalidConfig, c.InitialRebalanceDelay)
	case c.MinSessionTimeout <= 0 || c.MaxSessionTimeout < c.MinSessionTimeout:
		return fmt.Errorf("%w: session timeouts [%v, %v]", ErrInvalidConfig, c.MinSessionTimeout, c.MaxSessionTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// New checks the config and starts a coordinator.
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, shards: map[int32]*shard{}, stop: make(chan struct{})}
	c.wg.Add(1)
	go c.tick()
	return c, nil
}

// Close stops the coordinator; waiting requests get NOT_COORDINATOR.
func (c *Coordinator) Close() {
	c.mu.Lock()
	select {
	case <-c.stop:
		c.mu.Unlock()
		return
	default:
	}
	close(c.stop)
	for id := range c.shards {
		c.resignLocked(id)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// Elected takes over an offsets partition this broker now leads: its
// records are replayed in the background.
func (c *Coordinator) Elected(id int32, log Log) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.shards[id]; s != nil && s.log == log {
		return
	}
	c.resignLocked(id)
	s := &shard{id: id, log: log, ready: make(chan struct{}), groups: map[string]*group{}, pending: map[int64]map[string]map[TopicPartition]Committed{}}
	c.shards[id] = s
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		groups, pending, err := replay(log, c.cfg)
		n := len(groups)
		c.mu.Lock()
		if !s.gone {
			s.groups, s.pending, s.err = groups, pending, err
		}
		c.mu.Unlock()
		close(s.ready)
		if err != nil {
			c.log.Error("loading consumer groups", "partition", id, "err", err)
		} else {
			c.log.Info("consumer groups loaded", "partition", id, "groups", n)
		}
	}()
}

// Resigned drops an offsets partition this broker no longer leads.
func (c *Coordinator) Resigned(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resignLocked(id)
}

// Leads reports whether this coordinator has taken partition id over.
func (c *Coordinator) Leads(id int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shards[id] != nil
}

func (c *Coordinator) resignLocked(id int32) {
	s := c.shards[id]
	if s == nil {
		return
	}
	s.gone = true
	for _, g := range s.groups {
		for _, m := range g.members {
			c.failWaitsLocked(m, kerr.NotCoordinator.Code)
		}
	}
	delete(c.shards, id)
}

// groupLocked finds the loaded shard of a group; create makes the group.
func (c *Coordinator) groupLocked(shardID int32, name string, create bool) (*shard, *group, error) {
	s := c.shards[shardID]
	if s == nil {
		return nil, nil, kerr.NotCoordinator
	}
	select {
	case <-s.ready:
	default:
		return nil, nil, kerr.CoordinatorLoadInProgress
	}
	if s.err != nil {
		return nil, nil, fmt.Errorf("%w: %w", kerr.CoordinatorLoadInProgress, s.err)
	}
	g := s.groups[name]
	if g == nil && create {
		g = newGroup(name)
		s.groups[name] = g
	}
	return s, g, nil
}

// memberlessGroupLocked finds a group that may lose state: it exists and
// has no members (busy is the error code when it has some).
func (c *Coordinator) memberlessGroupLocked(shardID int32, name string, busy int16) (*shard, *group, int16) {
	s, g, err := c.groupLocked(shardID, name, false)
	switch {
	case err != nil:
		return nil, nil, codeOf(err)
	case g == nil:
		return nil, nil, kerr.GroupIDNotFound.Code
	case len(g.members) > 0:
		return nil, nil, busy
	}
	return s, g, 0
}

func newGroup(name string) *group {
	return &group{name: name, state: Empty, members: map[string]*member{}, pendingIDs: map[string]bool{},
		offsets: map[TopicPartition]Committed{}}
}

func newMemberID(clientID string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:])
}

// tick expires sessions and completes rebalances whose time is up.
func (c *Coordinator) tick() {
	defer c.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.mu.Lock()
			for _, s := range c.loadedShardsLocked() {
				for _, g := range s.groups {
					c.expireLocked(s, g, now)
				}
			}
			c.mu.Unlock()
		}
	}
}

func (c *Coordinator) expireLocked(s *shard, g *group, now time.Time) {
	for id, m := range g.members {
		if m.joinWait != nil {
			continue // waiting in a rebalance: its session is on hold
		}
		if now.Sub(m.lastSeen) > m.sessionTimeout {
			c.log.Info("group member session expired", "group", g.name, "member", id)
			c.removeMemberLocked(s, g, id)
		}
	}
	if g.state == PreparingRebalance {
		c.maybeCompleteLocked(s, g, now)
	}
}

func (c *Coordinator) removeMemberLocked(s *shard, g *group, id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	c.failWaitsLocked(m, kerr.UnknownMemberID.Code)
	delete(g.members, id)
	if g.state == Stable || g.state == CompletingRebalance {
		c.prepareRebalanceLocked(g, time.Now())
	}
	// The others may all have rejoined already, or nobody is left.
	c.maybeCompleteLocked(s, g, time.Now())
}

func (c *Coordinator) failWaitsLocked(m *member, code int16) {
	if m.joinWait != nil {
		m.joinWait <- kmsg.JoinGroupResponse{ErrorCode: code}
		m.joinWait = nil
	}
	if m.syncWait != nil {
		m.syncWait <- kmsg.SyncGroupResponse{ErrorCode: code}
		m.syncWait = nil
	}
}

func (c *Coordinator) prepareRebalanceLocked(g *group, now time.Time) {
	if g.state == PreparingRebalance {
		return
	}
	// Members waiting for a sync of the generation being abandoned learn
	// that a new rebalance began.
	for _, m := range g.members {
		if m.syncWait != nil {
			m.syncWait <- kmsg.SyncGroupResponse{ErrorCode: kerr.RebalanceInProgress.Code}
			m.syncWait = nil
		}
		m.joined = false
	}
	var timeout time.Duration
	for _, m := range g.members {
		timeout = max(timeout, m.rebalanceTimeout)
	}
	if g.state == Empty {
		g.initialUntil = now.Add(c.cfg.InitialRebalanceDelay)
		timeout = max(timeout, c.cfg.InitialRebalanceDelay)
	}
	g.state = PreparingRebalance
	g.deadline = now.Add(timeout)
}

// maybeCompleteLocked finishes a rebalance when every member has rejoined
// (after the initial delay) or the rebalance timeout passed.
func (c *Coordinator) maybeCompleteLocked(s *shard, g *group, now time.Time) {
	if g.state != PreparingRebalance {
		return
	}
	all := true
	for _, m := range g.members {
		all = all && m.joined
	}
	if !(all && !now.Before(g.initialUntil)) && now.Before(g.deadline) {
		return
	}
	for id, m := range g.members {
		if !m.joined {
			c.log.Info("group member did not rejoin in time", "group", g.name, "member", id)
			c.failWaitsLocked(m, kerr.UnknownMemberID.Code)
			delete(g.members, id)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = Empty, "", ""
		c.persistAsync(s, g)
		return
	}
	g.protocol = chooseProtocol(g)
	if g.members[g.leader] == nil {
		ids := memberIDs(g)
		sort.Slice(ids, func(i, j int) bool { return g.members[ids[i]].order < g.members[ids[j]].order })
		g.leader = ids[0]
	}
	g.state = CompletingRebalance
	for id, m := range g.members {
		res := kmsg.JoinGroupResponse{Generation: g.generation, ProtocolType: optional(g.protocolType), Protocol: optional(g.protocol),
			LeaderID: g.leader, MemberID: id}
		if id == g.leader {
			for _, oid := range memberIDs(g) {
				om := g.members[oid]
				res.Members = append(res.Members, kmsg.JoinGroupResponseMember{MemberID: oid, InstanceID: optional(om.instanceID),
					ProtocolMetadata: om.metadataFor(g.protocol)})
			}
		}
		if m.joinWait != nil {
			m.joinWait <- res
			m.joinWait = nil
		}
		m.lastSeen = now
	}
	c.log.Info("group rebalanced", "group", g.name, "generation", g.generation, "members", len(g.members), "protocol", g.protocol, "leader", g.leader)
}

func memberIDs(g *group) []string {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

// chooseProtocol picks, among the protocols every member supports, the
// one members list first most often (Kafka's vote).
func chooseProtocol(g *group) string {
	var common []string
	first := true
	for _, m := range g.members {
		var names []string
		for _, p := range m.protocols {
			names = append(names, p.name)
		}
		if first {
			common, first = names, false
			continue
		}
		common = slices.DeleteFunc(common, func(n string) bool { return !slices.Contains(names, n) })
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(common, p.name) {
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, n := range common {
		if best == "" || votes[n] > votes[best] {
			best = n
		}
	}
	return best
}

// supportsProtocols reports whether a joining member shares a protocol
// with every current member.
func (g *group) supportsProtocols(protocolType string, protos []protocol, self string) bool {
	if len(protos) == 0 {
		return false
	}
	others := 0
	for id := range g.members {
		if id != self {
			others++
		}
	}
	if others == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protos {
		ok := true
		for id, m := range g.members {
			if id != self && m.metadataFor(p.name) == nil && !slices.ContainsFunc(m.protocols, func(q protocol) bool { return q.name == p.name }) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// loadedShardsLocked lists the shards whose offsets partition has been
// replayed. Caller holds mu.
func (c *Coordinator) loadedShardsLocked() []*shard {
	var out []*shard
	for _, s := range c.shards {
		select {
		case <-s.ready:
			out = append(out, s)
		default:
		}
	}
	return out
}
