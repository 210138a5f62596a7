package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Member is what the controller needs to know of a node from membership:
// its name, whether it is alive, and its tags (TagID, TagKafka, TagRaft).
type Member struct {
	Name  string
	Alive bool
	Tags  map[string]string
}

// Tags every broker gossips.
const (
	TagID    = "id"    // Kafka broker id
	TagKafka = "kafka" // advertised Kafka host:port of the inter-broker listener
	// TagListeners names every listener's advertised address:
	// "INTERNAL://10.0.0.1:9094,EXTERNAL://mlog.example.com:9194"; empty
	// for a broker with one unnamed listener.
	TagListeners = "listeners"
	TagRaft      = "raft" // Raft host:port
	// TagIncarnation changes every time a broker process starts: a
	// broker that restarted (perhaps with an empty disk) is taken out of
	// the ISRs until it has caught up again.
	TagIncarnation = "incarnation"
	// TagRaftState is "1" once a broker holds Raft state: it belongs to
	// a cluster. A bootstrap node that starts with no state of its own
	// (a wiped disk) joins the cluster its peers have instead of
	// founding a second one.
	TagRaftState = "raft_state"
	// TagRack is broker.rack, empty when none.
	TagRack = "rack"
	// TagHTTP is the base URL of the broker's HTTP listener
	// ("https://10.0.0.1:9644"), empty without one: where another node
	// forwards a REST request for something only this one holds.
	TagHTTP = "http"
)

// Controller runs on every node and acts while its node is the Raft leader.
type Controller struct {
	node    *Node
	members func() []Member
	voters  int
	log     *slog.Logger
	// bootstrap are the credentials a cluster without users gets
	// (SetBootstrapUser); nil for none.
	bootstrap *AlterScram
	// clusterID is what a cluster without one is given (SetClusterID).
	clusterID string
	// imbalanceInterval is how often preferred leaders are rebalanced
	// (Kafka's leader.imbalance.check.interval.seconds; 0: never);
	// lastBalance is the last time (unix nanoseconds): reconcile also runs
	// on request goroutines.
	imbalanceInterval time.Duration
	lastBalance       atomic.Int64

	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// NewController returns a controller for node; members lists the nodes
// membership knows.
func NewController(node *Node, members func() []Member, voters int, logger *slog.Logger) *Controller {
	if voters < 1 {
		voters = DefaultVoters
	}
	return &Controller{node: node, members: members, voters: voters, log: logger,
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// SetBootstrapUser makes the controller give a cluster that has no users
// these credentials. Call before Start.
func (c *Controller) SetBootstrapUser(a AlterScram) { c.bootstrap = &a }

// SetClusterID makes the controller name a cluster that has no id yet
// (Kafka's cluster.id, the same on every broker) id. Call before Start.
func (c *Controller) SetClusterID(id string) { c.clusterID = id }

// SetLeaderImbalanceInterval sets how often leadership is moved back to
// preferred replicas (0: never). Call before Start.
func (c *Controller) SetLeaderImbalanceInterval(d time.Duration) { c.imbalanceInterval = d }

// Start runs the reconcile loop in the background.
func (c *Controller) Start() {
	c.wg.Add(1)
	go c.loop()
}

// Wake asks for a reconcile now (a member joined, failed or left).
func (c *Controller) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Stop ends the loop.
func (c *Controller) Stop() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}

func (c *Controller) loop() {
	defer c.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.wake:
		case <-c.node.LeaderCh():
		}
		if !c.node.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.reconcile(ctx); err != nil && !errors.Is(err, ErrNotLeader) {
			c.log.Warn("controller reconcile", "err", err)
		}
		cancel()
	}
}

// reconcile brings the metadata in line with membership: brokers
// registered, alive or not, Raft servers added, the bootstrap user on a
// cluster with no users, leaders elected.
func (c *Controller) reconcile(ctx context.Context) error {
	st := c.node.FSM().State()
	servers, err := c.node.Servers()
	if err != nil {
		return err
	}
	voters := 0
	for _, v := range servers {
		if v {
			voters++
		}
	}
	alive := map[string]bool{}
	for _, m := range c.members() {
		if !m.Alive {
			continue
		}
		alive[m.Name] = true
		id, err := strconv.ParseInt(m.Tags[TagID], 10, 32)
		if err != nil {
			continue // not an mlog broker, or not yet tagged
		}
		b := st.Brokers[int32(id)]
		if b == nil || !b.Alive || b.KafkaAddr != m.Tags[TagKafka] || b.RaftAddr != m.Tags[TagRaft] || b.Name != m.Name || b.Incarnation != m.Tags[TagIncarnation] || b.Rack != m.Tags[TagRack] || b.Listeners != m.Tags[TagListeners] || b.HTTPURL != m.Tags[TagHTTP] {
			if _, err := c.node.Apply(ctx, CmdRegisterBroker, RegisterBroker{ID: int32(id), Name: m.Name, KafkaAddr: m.Tags[TagKafka],
				RaftAddr: m.Tags[TagRaft], Incarnation: m.Tags[TagIncarnation], Rack: m.Tags[TagRack], Listeners: m.Tags[TagListeners], HTTPURL: m.Tags[TagHTTP]}); err != nil {
				return err
			}
			c.log.Info("broker registered", "broker", m.Name, "id", id, "kafka", m.Tags[TagKafka])
		}
		if st.Brokers[int32(id)] != nil && st.Brokers[int32(id)].Decommissioned {
			continue // unregistered: never back in the Raft configuration
		}
		if isVoter, ok := servers[m.Name]; ok && !isVoter && voters < c.voters {
			// A voter left (decommissioned): a live non-voter takes its place.
			if err := c.node.AddServer(m.Name, m.Tags[TagRaft], true); err != nil {
				return fmt.Errorf("cluster: promote %s to voter: %w", m.Name, err)
			}
			voters++
			c.log.Info("raft non-voter promoted", "node", m.Name)
		}
		if _, ok := servers[m.Name]; !ok && m.Tags[TagRaft] != "" {
			voter := voters < c.voters
			if err := c.node.AddServer(m.Name, m.Tags[TagRaft], voter); err != nil {
				return fmt.Errorf("cluster: add %s to raft: %w", m.Name, err)
			}
			if voter {
				voters++
			}
			c.log.Info("raft server added", "node", m.Name, "voter", voter)
		}
	}
	for _, id := range st.BrokerIDs() {
		if b := st.Brokers[id]; b.Alive && !alive[b.Name] {
			if _, err := c.node.Apply(ctx, CmdBrokerStatus, BrokerStatus{ID: id, Alive: false}); err != nil {
				return err
			}
			c.log.Warn("broker lost", "broker", b.Name, "id", id)
		}
	}
	if c.clusterID != "" && c.node.FSM().State().ClusterID == "" {
		if _, err := c.node.Apply(ctx, CmdSetClusterID, SetClusterID{ID: c.clusterID}); err != nil {
			return err
		}
	}
	if c.bootstrap != nil && len(c.node.FSM().State().Users) == 0 {
		if _, err := c.node.Apply(ctx, CmdAlterScram, *c.bootstrap); err != nil {
			return err
		}
		c.log.Info("bootstrap user created", "user", c.bootstrap.Upserts[0].User)
	}
	if changes := elect(c.node.FSM().State()); len(changes) > 0 {
		if _, err := c.node.Apply(ctx, CmdSetLeaders, SetLeaders{Changes: changes}); err != nil {
			return err
		}
		for _, ch := range changes {
			c.log.Info("partition leader elected", "topic", ch.Topic, "partition", ch.Partition, "leader", ch.Leader, "epoch", ch.LeaderEpoch, "isr", ch.ISR)
		}
	}
	if err := c.finishReassignments(ctx); err != nil {
		return err
	}
	return c.rebalanceLeaders(ctx)
}

// CreateTopic assigns and records a new topic. Controller only.
func (c *Controller) CreateTopic(ctx context.Context, name string, id TopicID, partitions, rf int, configs map[string]string, validateOnly bool) (*Topic, error) {
	st := c.node.FSM().State()
	if _, ok := st.Topics[name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	parts, err := assign(st, partitions, rf)
	if errors.Is(err, ErrNotEnoughBrokers) && c.node.IsLeader() {
		// Just elected: the brokers may not be registered yet.
		if rerr := c.reconcile(ctx); rerr == nil {
			parts, err = assign(c.node.FSM().State(), partitions, rf)
		}
	}
	if err != nil {
		return nil, err
	}
	t := Topic{Name: name, ID: id, Configs: configs, Partitions: parts, Internal: name == "__consumer_offsets"}
	if validateOnly {
		if !c.node.IsLeader() {
			return nil, ErrNotLeader
		}
		return &t, nil
	}
	if _, err := c.node.Apply(ctx, CmdCreateTopic, CreateTopic{Topic: t}); err != nil {
		return nil, err
	}
	return &t, nil
}

// DeleteTopic removes a topic. Controller only.
func (c *Controller) DeleteTopic(ctx context.Context, name string) error {
	_, err := c.node.Apply(ctx, CmdDeleteTopic, DeleteTopic{Name: name})
	return err
}

// CreatePartitions grows a topic to count partitions. Controller only.
func (c *Controller) CreatePartitions(ctx context.Context, name string, count int, validateOnly bool) error {
	st := c.node.FSM().State()
	t, ok := st.Topics[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	if count <= len(t.Partitions) {
		return fmt.Errorf("%w: topic %q has %d partitions, asked for %d", ErrInvalidPartitionCount, name, len(t.Partitions), count)
	}
	rf := len(t.Partitions[0].TargetReplicas())
	parts, err := assign(st, count-len(t.Partitions), rf)
	if err != nil || validateOnly {
		return err
	}
	_, err = c.node.Apply(ctx, CmdCreatePartitions, CreatePartitions{Name: name, Partitions: parts})
	return err
}

// ErrInvalidPartitionCount means partitions can only be added.
var ErrInvalidPartitionCount = errors.New("cluster: invalid partition count")

// AlterISR applies a partition leader's ISR change and returns the new
// partition epoch. Controller only.
func (c *Controller) AlterISR(ctx context.Context, a AlterISR) (int32, error) {
	v, err := c.node.Apply(ctx, CmdAlterISR, a)
	if err != nil {
		return 0, err
	}
	return v.(int32), nil
}

// AllocateProducerIDs reserves count ids and returns the first.
func (c *Controller) AllocateProducerIDs(ctx context.Context, count int64) (int64, error) {
	v, err := c.node.Apply(ctx, CmdAllocProducerIDs, AllocProducerIDs{Count: count})
	if err != nil {
		return 0, err
	}
	return v.(int64), nil
}

// ControlledShutdown moves leadership of every partition broker id leads
// to another in-sync replica and takes id out of the ISRs, so its stop
// costs producers nothing but a retry. Controller only.
func (c *Controller) ControlledShutdown(ctx context.Context, id int32) error {
	changes := moveLeadersAway(c.node.FSM().State(), id)
	if len(changes) == 0 {
		return nil
	}
	_, err := c.node.Apply(ctx, CmdSetLeaders, SetLeaders{Changes: changes})
	return err
}
