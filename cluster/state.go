package cluster

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// NoLeader is the leader of a partition no live in-sync replica can lead.
const NoLeader = -1

// State is the cluster metadata. Read it through FSM.State, which returns a
// copy.
type State struct {
	Brokers        map[int32]*Broker `json:"brokers"`
	Topics         map[string]*Topic `json:"topics"`
	NextProducerID int64             `json:"next_producer_id"`
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
}

func newState() *State {
	return &State{Brokers: map[int32]*Broker{}, Topics: map[string]*Topic{}}
}

func (s *State) clone() *State {
	b, _ := json.Marshal(s)
	c := newState()
	_ = json.Unmarshal(b, c)
	return c
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
func (s *State) fence(id int32) {
	for _, t := range s.Topics {
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if !slices.Contains(p.ISR, id) || len(p.ISR) == 1 {
				if p.Leader == id && len(p.ISR) == 1 {
					p.Leader = NoLeader
					p.LeaderEpoch++
					p.PartitionEpoch++
				}
				continue
			}
			p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
			if p.Leader == id {
				p.Leader = NoLeader
				p.LeaderEpoch++
			}
			p.PartitionEpoch++
		}
	}
}

// Alive reports whether a broker is registered and alive.
func (s *State) Alive(id int32) bool {
	b, ok := s.Brokers[id]
	return ok && b.Alive
}
