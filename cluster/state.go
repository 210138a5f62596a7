package cluster

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/mlog/mlog/acl"
)

// NoLeader is the leader of a partition no live in-sync replica can lead.
const NoLeader = -1

// State is the cluster metadata.
//
// A State obtained from FSM.State is shared by every reader and is
// READ-ONLY: never change it or anything it points to (the Brokers and
// Topics maps, a Broker, a Topic, its Configs map, its Partitions slice,
// a partition's Replicas or ISR slice). Copy what you need to change. The
// FSM never changes a State once it has published it: each command builds
// a new one (see draft), so a reader may keep one as long as it likes and
// sees one consistent version of the metadata.
type State struct {
	// ClusterID is Kafka's cluster.id, given by the first controller.
	ClusterID      string            `json:"cluster_id,omitempty"`
	Brokers        map[int32]*Broker `json:"brokers"`
	Topics         map[string]*Topic `json:"topics"`
	NextProducerID int64             `json:"next_producer_id"`
	// Users are the SCRAM principals (users.go).
	Users map[string]*User `json:"users,omitempty"`
	// ACLs are the access control bindings (acls.go); a command replaces
	// the slice, never changes it.
	ACLs []acl.Binding `json:"acls,omitempty"`
	// BrokerConfigs are dynamic broker configs by broker id, "" for the
	// cluster-wide default (configs.go); replaced whole by a command.
	BrokerConfigs map[string]map[string]string `json:"broker_configs,omitempty"`
}

// Broker is one registered node.
type Broker struct {
	ID        int32  `json:"id"`
	Name      string `json:"name"`
	KafkaAddr string `json:"kafka_addr"` // advertised host:port
	RaftAddr  string `json:"raft_addr"`
	Alive     bool   `json:"alive"`
	// Incarnation identifies the broker's current process (a Serf tag).
	Incarnation string `json:"incarnation,omitempty"`
	// Rack is broker.rack (a Serf tag): consumers in the same rack may
	// be sent to this broker's replicas (KIP-392).
	Rack string `json:"rack,omitempty"`
	// Listeners are the advertised addresses of its named listeners
	// (TagListeners' form); empty for one unnamed listener at KafkaAddr.
	Listeners string `json:"listeners,omitempty"`
	// HTTPURL is the base URL of its HTTP listener (TagHTTP).
	HTTPURL string `json:"http_url,omitempty"`
	// Decommissioned brokers were unregistered (UnregisterBroker): no
	// replica is assigned to them, and they are out of the Raft
	// configuration, never added again.
	Decommissioned bool `json:"decommissioned,omitempty"`
}

// Endpoint is the advertised address of the broker's listener named
// listener: KafkaAddr for a broker with one unnamed listener (or when
// listener is ""), false when it has no listener of that name.
func (b *Broker) Endpoint(listener string) (string, bool) {
	if listener == "" || b.Listeners == "" {
		return b.KafkaAddr, true
	}
	for _, l := range strings.Split(b.Listeners, ",") {
		if name, addr, ok := strings.Cut(l, "://"); ok && name == listener {
			return addr, true
		}
	}
	return "", false
}

// TopicID is a topic's UUID.
type TopicID [16]byte

// MarshalText writes the id as hex.
func (id TopicID) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(id[:])), nil }

// UnmarshalText reads a hex id.
func (id *TopicID) UnmarshalText(b []byte) error {
	raw, err := hex.DecodeString(string(b))
	if err != nil || len(raw) != 16 {
		return fmt.Errorf("cluster: bad topic id %q", b)
	}
	copy(id[:], raw)
	return nil
}

// Topic is one topic and its partitions.
type Topic struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Internal   bool              `json:"internal,omitempty"` // __consumer_offsets
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []Partition       `json:"partitions"`
}

// Partition is one partition's assignment and leadership.
type Partition struct {
	Replicas    []int32 `json:"replicas"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
	// PartitionEpoch moves on every change to leader or ISR, so a stale
	// ISR change from an old leader is refused (Kafka's partition epoch).
	PartitionEpoch int32 `json:"partition_epoch"`
	// AddingReplicas and RemovingReplicas describe a reassignment in
	// progress (reassign.go): Replicas holds both the target replicas
	// and those leaving, until every adding one is in the ISR.
	AddingReplicas   []int32 `json:"adding,omitempty"`
	RemovingReplicas []int32 `json:"removing,omitempty"`
}

func newState() *State {
	return &State{Brokers: map[int32]*Broker{}, Topics: map[string]*Topic{}}
}

// draft is the next State while one command builds it, copy-on-write
// from the published one. The State struct and its Brokers and Topics
// maps are copied up front; a Topic is copied (its Partitions slice and
// Configs map with it) the first time the command changes it; a Broker is
// replaced, never changed. Replicas and ISR slices are never written in
// place, only replaced by fresh ones, so a copied Topic may share them.
type draft struct {
	*State
	copied map[string]bool // topics this command has copied
}

func newDraft(s *State) *draft {
	c := *s
	c.Brokers = maps.Clone(s.Brokers)
	c.Topics = maps.Clone(s.Topics)
	c.Users = maps.Clone(s.Users)
	return &draft{State: &c, copied: map[string]bool{}}
}

// topic returns the named topic, which must exist, for this command to
// change: a copy of the published one the first time.
func (d *draft) topic(name string) *Topic {
	t := d.Topics[name]
	if !d.copied[name] {
		t = t.clone()
		d.Topics[name] = t
		d.copied[name] = true
	}
	return t
}

// clone copies t with its own Partitions slice and Configs map.
func (t *Topic) clone() *Topic {
	c := *t
	c.Configs = maps.Clone(t.Configs)
	c.Partitions = slices.Clone(t.Partitions)
	return &c
}

// BrokerIDs returns the registered broker ids in order.
func (s *State) BrokerIDs() []int32 {
	ids := make([]int32, 0, len(s.Brokers))
	for id := range s.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TopicNames returns the topic names in order.
func (s *State) TopicNames() []string {
	names := make([]string, 0, len(s.Topics))
	for n := range s.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// fence takes a broker that died or restarted out of every ISR it shares
// with others (it may have lost records, or its disk), and out of the
// leadership of those partitions (the controller elects again from the
// rest). A partition whose ISR is that broker alone keeps it: nobody else
// has all its records.
func (d *draft) fence(id int32) {
	for name, t := range d.Topics {
		for i, p := range t.Partitions {
			if q, ok := fenced(p, id); ok {
				d.topic(name).Partitions[i] = q
			}
		}
	}
}

// fenced returns partition p with broker id fenced, and whether that
// changed it.
func fenced(p Partition, id int32) (Partition, bool) {
	switch {
	case p.Leader == id && len(p.ISR) == 1:
		// Its only in-sync replica: leaderless until it returns.
		p.Leader = NoLeader
		p.LeaderEpoch++
		p.PartitionEpoch++
		return p, true
	case len(p.ISR) == 1 || !slices.Contains(p.ISR, id):
		return p, false
	}
	p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
	if p.Leader == id {
		p.Leader = NoLeader
		p.LeaderEpoch++
	}
	p.PartitionEpoch++
	return p, true
}

// Alive reports whether a broker is registered and alive.
func (s *State) Alive(id int32) bool {
	b, ok := s.Brokers[id]
	return ok && b.Alive
}
