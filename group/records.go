package group

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/storage/batch"
)

// __consumer_offsets records, in Kafka's schemas: a key starting with
// version 0 or 1 is an OffsetCommitKey, version 2 a GroupMetadataKey; a nil
// value is a tombstone.

type recordKV struct{ key, value []byte }

type recordKVs []recordKV

func (rs recordKVs) records() []batch.Record {
	now := time.Now().UnixMilli()
	out := make([]batch.Record, len(rs))
	for i, r := range rs {
		out[i] = batch.Record{Timestamp: now, Key: r.key, Value: r.value}
	}
	return out
}

func offsetRecord(groupName string, tp TopicPartition, o Committed) recordKV {
	k := kmsg.NewOffsetCommitKey()
	k.Version, k.Group, k.Topic, k.Partition = 1, groupName, tp.Topic, tp.Partition
	v := kmsg.NewOffsetCommitValue()
	v.Version, v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = 3, o.Offset, o.LeaderEpoch, o.Metadata, o.CommitMs
	return recordKV{k.AppendTo(nil), v.AppendTo(nil)}
}

func offsetTombstone(groupName string, tp TopicPartition) recordKV {
	k := kmsg.NewOffsetCommitKey()
	k.Version, k.Group, k.Topic, k.Partition = 1, groupName, tp.Topic, tp.Partition
	return recordKV{key: k.AppendTo(nil)}
}

func groupMetadataRecord(g *group) recordKV {
	k := kmsg.NewGroupMetadataKey()
	k.Version, k.Group = 2, g.name
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType, v.Generation, v.Protocol, v.Leader = g.protocolType, g.generation, optional(g.protocol), optional(g.leader)
	v.CurrentStateTimestamp = time.Now().UnixMilli()
	for _, id := range memberIDs(g) {
		m := g.members[id]
		mv := kmsg.NewGroupMetadataValueMember()
		mv.MemberID, mv.InstanceID, mv.ClientID, mv.ClientHost = id, optional(m.instanceID), m.clientID, m.clientHost
		mv.RebalanceTimeoutMillis, mv.SessionTimeoutMillis = int32(m.rebalanceTimeout.Milliseconds()), int32(m.sessionTimeout.Milliseconds())
		mv.Subscription, mv.Assignment = m.metadataFor(g.protocol), m.assignment
		v.Members = append(v.Members, mv)
	}
	return recordKV{k.AppendTo(nil), v.AppendTo(nil)}
}

func groupTombstone(name string) recordKV {
	k := kmsg.NewGroupMetadataKey()
	k.Version, k.Group = 2, name
	return recordKV{key: k.AppendTo(nil)}
}

// persistAsync writes a group's metadata without waiting (an emptied
// group's new generation); a failure only costs a generation number.
func (c *Coordinator) persistAsync(s *shard, g *group) {
	rec := groupMetadataRecord(g)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.log.Commit(ctx, recordKVs{rec}.records()); err != nil {
			c.log.Debug("persisting group metadata", "group", g.name, "err", err)
		}
	}()
}

// replay rebuilds groups from an offsets partition, and the offsets of
// transactions not yet ended.
func replay(log Log, cfg Config) (map[string]*group, map[int64]map[string]map[TopicPartition]Committed, error) {
	groups := map[string]*group{}
	pending := map[int64]map[string]map[TopicPartition]Committed{}
	get := func(name string) *group {
		g := groups[name]
		if g == nil {
			g = newGroup(name)
			groups[name] = g
		}
		return g
	}
	err := log.Replay(func(h batch.Header, r batch.Record) error {
		if h.Control() {
			if len(r.Key) >= 4 {
				endTxn(pending, h.ProducerID, int16(binary.BigEndian.Uint16(r.Key[2:])) == batch.MarkerCommit, get)
			}
			return nil
		}
		if len(r.Key) < 2 {
			return nil
		}
		switch version := int16(binary.BigEndian.Uint16(r.Key)); version {
		case 0, 1:
			var k kmsg.OffsetCommitKey
			if err := k.ReadFrom(r.Key); err != nil {
				return fmt.Errorf("group: offset key at %d: %w", r.Offset, err)
			}
			tp := TopicPartition{k.Topic, k.Partition}
			if h.Transactional() && r.Value != nil {
				var v kmsg.OffsetCommitValue
				if err := v.ReadFrom(r.Value); err != nil {
					return fmt.Errorf("group: offset value at %d: %w", r.Offset, err)
				}
				addPending(pending, h.ProducerID, k.Group, tp, Committed{Offset: v.Offset, LeaderEpoch: v.LeaderEpoch, Metadata: v.Metadata, CommitMs: v.CommitTimestamp})
				return nil
			}
			g := get(k.Group)
			if r.Value == nil {
				delete(g.offsets, tp)
				return nil
			}
			var v kmsg.OffsetCommitValue
			if err := v.ReadFrom(r.Value); err != nil {
				return fmt.Errorf("group: offset value at %d: %w", r.Offset, err)
			}
			g.offsets[tp] = Committed{Offset: v.Offset, LeaderEpoch: v.LeaderEpoch, Metadata: v.Metadata, CommitMs: v.CommitTimestamp}
		case 2:
			var k kmsg.GroupMetadataKey
			if err := k.ReadFrom(r.Key); err != nil {
				return fmt.Errorf("group: group key at %d: %w", r.Offset, err)
			}
			if r.Value == nil {
				delete(groups, k.Group)
				return nil
			}
			var v kmsg.GroupMetadataValue
			if err := v.ReadFrom(r.Value); err != nil {
				return fmt.Errorf("group: group value at %d: %w", r.Offset, err)
			}
			g := get(k.Group)
			g.protocolType, g.generation = v.ProtocolType, v.Generation
			g.protocol, g.leader = deref(v.Protocol), deref(v.Leader)
			g.members = map[string]*member{}
			now := time.Now()
			for i, mv := range v.Members {
				m := &member{id: mv.MemberID, instanceID: deref(mv.InstanceID), clientID: mv.ClientID, clientHost: mv.ClientHost,
					sessionTimeout: time.Duration(mv.SessionTimeoutMillis) * time.Millisecond, rebalanceTimeout: time.Duration(mv.RebalanceTimeoutMillis) * time.Millisecond,
					protocolType: v.ProtocolType, protocols: []protocol{{name: g.protocol, metadata: mv.Subscription}}, assignment: mv.Assignment,
					lastSeen: now, order: i}
				g.members[m.id] = m
			}
			g.joinCounter = len(v.Members)
			g.state = Empty
			if len(g.members) > 0 {
				g.state = Stable // members carry on heartbeating to the new coordinator
			}
		}
		return nil
	})
	return groups, pending, err
}

// addPending notes an offset committed inside producer's transaction.
func addPending(pending map[int64]map[string]map[TopicPartition]Committed, producerID int64, groupName string, tp TopicPartition, o Committed) {
	byGroup := pending[producerID]
	if byGroup == nil {
		byGroup = map[string]map[TopicPartition]Committed{}
		pending[producerID] = byGroup
	}
	if byGroup[groupName] == nil {
		byGroup[groupName] = map[TopicPartition]Committed{}
	}
	byGroup[groupName][tp] = o
}

// endTxn applies (commit) or drops (abort) the offsets producer's
// transaction committed.
func endTxn(pending map[int64]map[string]map[TopicPartition]Committed, producerID int64, commit bool, get func(string) *group) {
	if commit {
		for name, offsets := range pending[producerID] {
			g := get(name)
			for tp, o := range offsets {
				g.offsets[tp] = o
			}
		}
	}
	delete(pending, producerID)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// optional is s as a nullable string: nil when empty.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
