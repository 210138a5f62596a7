package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

var (
	// ErrUnknownCommand means a log entry of a type or version this build
	// does not know.
	ErrUnknownCommand = errors.New("cluster: unknown command")
	// ErrTopicExists means a create for a topic that exists.
	ErrTopicExists = errors.New("cluster: topic already exists")
	// ErrUnknownTopic means a command names a topic that does not exist.
	ErrUnknownTopic = errors.New("cluster: unknown topic")
	// ErrUnknownPartition means a command names a partition that does not
	// exist.
	ErrUnknownPartition = errors.New("cluster: unknown partition")
	// ErrStaleEpoch means an ISR change from a leader whose leader or
	// partition epoch is no longer current.
	ErrStaleEpoch = errors.New("cluster: stale leader or partition epoch")
	// ErrInvalidISR means an ISR that is empty, lacks the leader, or names
	// a broker that is not a replica.
	ErrInvalidISR = errors.New("cluster: invalid ISR")
	// ErrBadCommand means a command whose body does not decode.
	ErrBadCommand = errors.New("cluster: malformed command")
)

// Command types. Each has version 1; a new shape gets a new version and the
// FSM keeps applying the old one.
const (
	CmdRegisterBroker   = "register_broker"
	CmdBrokerStatus     = "broker_status"
	CmdCreateTopic      = "create_topic"
	CmdDeleteTopic      = "delete_topic"
	CmdCreatePartitions = "create_partitions"
	CmdSetLeaders       = "set_leaders"
	CmdAlterISR         = "alter_isr"
	CmdAllocProducerIDs = "alloc_producer_ids"
)

// Command is one Raft log entry.
type Command struct {
	Type    string          `json:"type"`
	Version int             `json:"v"`
	Data    json.RawMessage `json:"data"`
}

// NewCommand encodes a command body.
func NewCommand(typ string, body any) ([]byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(Command{Type: typ, Version: 1, Data: data})
}

// RegisterBroker records a broker's addresses and marks it alive.
type RegisterBroker struct {
	ID          int32  `json:"id"`
	Name        string `json:"name"`
	KafkaAddr   string `json:"kafka_addr"`
	RaftAddr    string `json:"raft_addr"`
	Incarnation string `json:"incarnation,omitempty"`
	Rack        string `json:"rack,omitempty"`
	Listeners   string `json:"listeners,omitempty"`
	HTTPURL     string `json:"http_url,omitempty"`
}

// BrokerStatus marks a broker alive or not.
type BrokerStatus struct {
	ID    int32 `json:"id"`
	Alive bool  `json:"alive"`
}

// CreateTopic adds a topic with its assignment decided by the controller.
type CreateTopic struct {
	Topic Topic `json:"topic"`
}

// DeleteTopic removes a topic.
type DeleteTopic struct {
	Name string `json:"name"`
}

// CreatePartitions appends partitions to a topic.
type CreatePartitions struct {
	Name       string      `json:"name"`
	Partitions []Partition `json:"partitions"`
}

// LeaderChange sets one partition's leader, epoch and ISR.
type LeaderChange struct {
	Topic       string  `json:"topic"`
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
	// IfPartitionEpoch, when set, applies the change only to the
	// partition as it was decided on (an election a request asked for
	// may race the controller's own).
	IfPartitionEpoch *int32 `json:"if_partition_epoch,omitempty"`
}

// SetLeaders applies the controller's leadership decisions.
type SetLeaders struct {
	Changes []LeaderChange `json:"changes"`
}

// AlterISR is a partition leader's ISR change.
type AlterISR struct {
	Topic          string  `json:"topic"`
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	ISR            []int32 `json:"isr"`
}

// AllocProducerIDs reserves Count producer ids; the result is the first.
type AllocProducerIDs struct {
	Count int64 `json:"count"`
}

// apply changes the draft by one command and returns the command's
// result. A command that fails leaves the draft unpublished.
func (d *draft) apply(c Command) (any, error) {
	if c.Version != 1 {
		return nil, fmt.Errorf("%w: %s v%d", ErrUnknownCommand, c.Type, c.Version)
	}
	decode := func(v any) error {
		if err := json.Unmarshal(c.Data, v); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadCommand, c.Type, err)
		}
		return nil
	}
	switch c.Type {
	case CmdRegisterBroker:
		var b RegisterBroker
		if err := decode(&b); err != nil {
			return nil, err
		}
		if prev := d.Brokers[b.ID]; prev != nil && (!prev.Alive || prev.Incarnation != b.Incarnation) {
			d.fence(b.ID) // it was down or restarted: it rejoins ISRs by catching up
		}
		nb := &Broker{ID: b.ID, Name: b.Name, KafkaAddr: b.KafkaAddr, RaftAddr: b.RaftAddr, Alive: true, Incarnation: b.Incarnation, Rack: b.Rack, Listeners: b.Listeners, HTTPURL: b.HTTPURL}
		if prev := d.Brokers[b.ID]; prev != nil {
			nb.Decommissioned = prev.Decommissioned
		}
		d.Brokers[b.ID] = nb
		return nil, nil
	case CmdBrokerStatus:
		var b BrokerStatus
		if err := decode(&b); err != nil {
			return nil, err
		}
		if br, ok := d.Brokers[b.ID]; ok {
			if br.Alive && !b.Alive {
				d.fence(b.ID)
			}
			nb := *br
			nb.Alive = b.Alive
			d.Brokers[b.ID] = &nb
		}
		return nil, nil
	case CmdCreateTopic:
		var ct CreateTopic
		if err := decode(&ct); err != nil {
			return nil, err
		}
		if _, ok := d.Topics[ct.Topic.Name]; ok {
			return nil, fmt.Errorf("%w: %q", ErrTopicExists, ct.Topic.Name)
		}
		t := ct.Topic // freshly decoded: nothing else holds it
		d.Topics[t.Name] = &t
		return nil, nil
	case CmdDeleteTopic:
		var dt DeleteTopic
		if err := decode(&dt); err != nil {
			return nil, err
		}
		if _, ok := d.Topics[dt.Name]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, dt.Name)
		}
		delete(d.Topics, dt.Name)
		return nil, nil
	case CmdCreatePartitions:
		var cp CreatePartitions
		if err := decode(&cp); err != nil {
			return nil, err
		}
		if _, ok := d.Topics[cp.Name]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, cp.Name)
		}
		t := d.topic(cp.Name)
		t.Partitions = append(t.Partitions, cp.Partitions...)
		return nil, nil
	case CmdSetLeaders:
		var sl SetLeaders
		if err := decode(&sl); err != nil {
			return nil, err
		}
		for _, ch := range sl.Changes {
			if t := d.Topics[ch.Topic]; ch.IfPartitionEpoch != nil && (t == nil || int(ch.Partition) >= len(t.Partitions) ||
				t.Partitions[ch.Partition].PartitionEpoch != *ch.IfPartitionEpoch) {
				continue // changed since it was decided
			}
			if t := d.Topics[ch.Topic]; t != nil && int(ch.Partition) < len(t.Partitions) && ch.Partition >= 0 {
				// Decided on replicas a reassignment has changed since:
				// a leader or ISR member that is no longer a replica.
				reps := t.Partitions[ch.Partition].Replicas
				if (ch.Leader != NoLeader && !slices.Contains(reps, ch.Leader)) || slices.ContainsFunc(ch.ISR, func(r int32) bool { return !slices.Contains(reps, r) }) {
					continue
				}
			}
			p, err := d.partition(ch.Topic, ch.Partition)
			if err != nil {
				continue // deleted meanwhile: nothing to lead
			}
			p.Leader, p.LeaderEpoch, p.ISR = ch.Leader, ch.LeaderEpoch, slices.Clone(ch.ISR)
			p.PartitionEpoch++
		}
		return nil, nil
	case CmdAlterISR:
		var a AlterISR
		if err := decode(&a); err != nil {
			return nil, err
		}
		p, err := d.partition(a.Topic, a.Partition)
		if err != nil {
			return nil, err
		}
		if p.Leader != a.Leader || p.LeaderEpoch != a.LeaderEpoch || p.PartitionEpoch != a.PartitionEpoch {
			return nil, fmt.Errorf("%w: %s-%d leader %d epoch %d/%d, current %d epoch %d/%d", ErrStaleEpoch,
				a.Topic, a.Partition, a.Leader, a.LeaderEpoch, a.PartitionEpoch, p.Leader, p.LeaderEpoch, p.PartitionEpoch)
		}
		if len(a.ISR) == 0 || !slices.Contains(a.ISR, a.Leader) {
			return nil, fmt.Errorf("%w: %v without leader %d", ErrInvalidISR, a.ISR, a.Leader)
		}
		for _, r := range a.ISR {
			if !slices.Contains(p.Replicas, r) {
				return nil, fmt.Errorf("%w: %d is not a replica of %s-%d", ErrInvalidISR, r, a.Topic, a.Partition)
			}
		}
		p.ISR = slices.Clone(a.ISR)
		p.PartitionEpoch++
		return p.PartitionEpoch, nil
	case CmdAllocProducerIDs:
		var a AllocProducerIDs
		if err := decode(&a); err != nil {
			return nil, err
		}
		first := d.NextProducerID
		d.NextProducerID += max(a.Count, 1)
		return first, nil
	case CmdAlterScram:
		var a AlterScram
		if err := decode(&a); err != nil {
			return nil, err
		}
		d.applyAlterScram(a)
		return nil, nil
	case CmdCreateACLs:
		var a CreateACLs
		if err := decode(&a); err != nil {
			return nil, err
		}
		d.applyCreateACLs(a)
		return nil, nil
	case CmdDeleteACLs:
		var a DeleteACLs
		if err := decode(&a); err != nil {
			return nil, err
		}
		d.applyDeleteACLs(a)
		return nil, nil
	case CmdSetClusterID:
		var a SetClusterID
		if err := decode(&a); err != nil {
			return nil, err
		}
		if d.ClusterID == "" {
			d.ClusterID = a.ID
		}
		return nil, nil
	case CmdReassign:
		var a Reassign
		if err := decode(&a); err != nil {
			return nil, err
		}
		for _, ch := range a.Changes {
			// Checked by the controller; one that no longer holds (a
			// topic deleted meanwhile) is skipped, not the whole command.
			_ = d.applyReassign(ch)
		}
		return nil, nil
	case CmdFinishReassign:
		var a FinishReassign
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, d.applyFinishReassign(a)
	case CmdUnregisterBroker:
		var a UnregisterBroker
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, d.applyUnregister(a)
	case CmdAlterConfigs:
		var a AlterConfigs
		if err := decode(&a); err != nil {
			return nil, err
		}
		return nil, d.applyAlterConfigs(a)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownCommand, c.Type)
}

// partition returns a partition for the command to change, in its copy
// of the topic.
func (d *draft) partition(topic string, id int32) (*Partition, error) {
	t, ok := d.Topics[topic]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	if id < 0 || int(id) >= len(t.Partitions) {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, topic, id)
	}
	return &d.topic(topic).Partitions[id], nil
}
