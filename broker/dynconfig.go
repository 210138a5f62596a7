package broker

// Configs changed without a restart: IncrementalAlterConfigs and
// AlterConfigs for a topic's configs and for dynamic broker configs (one
// broker's, or under the name "" the cluster-wide default). The controller
// computes the new set from the metadata, checks it as topic creation
// does, and writes it through Raft; every broker applies it at its next
// reconcile: the open logs get their new settings (storage.Log.SetConfig),
// min.insync.replicas and unclean election the new roles.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
	"github.com/mlog/mlog/storage"
)

// dynamicBrokerConfig is a broker config settable without a restart.
type dynamicBrokerConfig struct {
	name  string
	check func(string) error
	// log applies it to the default log settings of topics that do not
	// set the topic config (nil: not a log default).
	log func(v string, lc *storage.Config)
}

func checkInt(min int64) func(string) error {
	return func(v string) error {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < min {
			return fmt.Errorf("%w: %q is not an integer >= %d", protocol.ErrInvalidConfig, v, min)
		}
		return nil
	}
}

func checkBool(v string) error {
	if v != "true" && v != "false" {
		return fmt.Errorf("%w: %q is not true or false", protocol.ErrInvalidConfig, v)
	}
	return nil
}

func parseInt(v string) int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// dynamicBrokerConfigs are Kafka's names for what may change live.
var dynamicBrokerConfigs = []dynamicBrokerConfig{
	{"log.retention.ms", checkInt(-1), func(v string, lc *storage.Config) { lc.RetentionMs = msDuration(parseInt(v)) }},
	{"log.retention.bytes", checkInt(-1), func(v string, lc *storage.Config) { lc.RetentionBytes = parseInt(v) }},
	{"log.segment.bytes", checkInt(1024), func(v string, lc *storage.Config) { lc.SegmentBytes = parseInt(v) }},
	// Bytes per second this broker's replicas being added by a
	// reassignment may fetch, all together (Kafka's follower throttle).
	{"follower.replication.throttled.rate", checkInt(1), nil},
	// Kafka's leader-side throttle, which kafka-reassign-partitions.sh
	// --throttle sets along with the follower's: mlog throttles on the
	// follower only, so it bounds the fetch too when the follower rate is
	// not set.
	{"leader.replication.throttled.rate", checkInt(1), nil},
	// Whether the controller moves leadership back to preferred
	// replicas (cluster-wide).
	{"auto.leader.rebalance.enable", checkBool, nil},
}

func findDynamicBrokerConfig(name string) (dynamicBrokerConfig, bool) {
	i := slices.IndexFunc(dynamicBrokerConfigs, func(d dynamicBrokerConfig) bool { return d.name == name })
	if i < 0 {
		return dynamicBrokerConfig{}, false
	}
	return dynamicBrokerConfigs[i], true
}

// AlterConfigs changes a topic's or dynamic broker configs through the
// controller.
func (b *Broker) AlterConfigs(ctx context.Context, a protocol.ConfigAlteration) error {
	return controllerClient{b}.AlterConfigs(ctx, a)
}

// alterMu makes the controller's read-compute-write of configs one at a
// time, so concurrent incremental changes do not lose each other.
var alterMu sync.Mutex

// alterConfigsLocal is the controller's side: the new set computed from
// the metadata and checked, then written (unless validate-only).
func (b *Broker) alterConfigsLocal(ctx context.Context, a protocol.ConfigAlteration) error {
	alterMu.Lock()
	defer alterMu.Unlock()
	st := b.cl.fsm.State()
	var cur map[string]string
	res := cluster.AlterConfigs{Name: a.Name}
	switch a.Type {
	case kmsg.ConfigResourceTypeTopic:
		t := st.Topics[a.Name]
		if t == nil {
			return b.notFound(a.Name)
		}
		cur, res.Resource = t.Configs, cluster.ConfigTopic
	case kmsg.ConfigResourceTypeBroker:
		if a.Name != "" {
			id, err := strconv.ParseInt(a.Name, 10, 32)
			if err != nil || st.Brokers[int32(id)] == nil {
				return fmt.Errorf("%w: broker %q: want a broker id, or \"\" for the cluster default", protocol.ErrInvalidRequest, a.Name)
			}
		}
		cur, res.Resource = st.BrokerConfigs[a.Name], cluster.ConfigBroker
	default:
		return fmt.Errorf("%w: config resource type %d", protocol.ErrInvalidRequest, a.Type)
	}
	next, err := applyConfigOps(cur, a)
	if err != nil {
		return err
	}
	switch res.Resource {
	case cluster.ConfigTopic:
		_, err = b.logConfig(st, next)
	default:
		for k, v := range next {
			d, ok := findDynamicBrokerConfig(k)
			if !ok {
				return fmt.Errorf("%w: %q is not a dynamic broker config (those are %s)", protocol.ErrInvalidConfig, k, dynamicBrokerConfigNames())
			}
			if err := d.check(v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		err = b.checkWouldBe(st, a.Name, next)
	}
	if err != nil || a.ValidateOnly {
		return err
	}
	res.Configs = next
	return protocol.Sentinel(b.cl.ctrl.AlterConfigs(ctx, res))
}

func dynamicBrokerConfigNames() string {
	var names []string
	for _, d := range dynamicBrokerConfigs {
		names = append(names, d.name)
	}
	return strings.Join(names, ", ")
}

// applyConfigOps is the config set after a's changes to cur.
func applyConfigOps(cur map[string]string, a protocol.ConfigAlteration) (map[string]string, error) {
	next := map[string]string{}
	if a.Incremental {
		next = maps.Clone(cur)
		if next == nil {
			next = map[string]string{}
		}
	}
	for _, op := range a.Ops {
		val := ""
		if op.Value != nil {
			val = *op.Value
		}
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if op.Value == nil {
				return nil, fmt.Errorf("%w: %s: no value to set", protocol.ErrInvalidConfig, op.Name)
			}
			next[op.Name] = val
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, op.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			list := splitList(next[op.Name])
			for _, item := range splitList(val) {
				has := slices.Contains(list, item)
				switch {
				case op.Op == kmsg.IncrementalAlterConfigOpAppend && !has:
					list = append(list, item)
				case op.Op == kmsg.IncrementalAlterConfigOpSubtract && has:
					list = slices.DeleteFunc(list, func(s string) bool { return s == item })
				}
			}
			if len(list) == 0 {
				delete(next, op.Name)
			} else {
				next[op.Name] = strings.Join(list, ",")
			}
		default:
			return nil, fmt.Errorf("%w: %s: operation %d", protocol.ErrInvalidRequest, op.Name, op.Op)
		}
	}
	return next, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkWouldBe checks the log settings every broker and topic would get
// with broker name's dynamic configs next: each value may be valid alone
// and the whole not (log.segment.bytes past what a segment may hold), and
// a set that no replica could open with must never reach the metadata.
func (b *Broker) checkWouldBe(st *cluster.State, name string, next map[string]string) error {
	wb := *st
	wb.BrokerConfigs = maps.Clone(st.BrokerConfigs)
	if wb.BrokerConfigs == nil {
		wb.BrokerConfigs = map[string]map[string]string{}
	}
	wb.BrokerConfigs[name] = next
	for _, id := range st.BrokerIDs() {
		lc := b.baseLogConfigFor(&wb, strconv.Itoa(int(id)))
		if err := lc.Validate(); err != nil {
			return fmt.Errorf("%w: broker %d: %w", protocol.ErrInvalidConfig, id, err)
		}
	}
	for _, t := range st.Topics {
		if _, err := b.logConfig(&wb, t.Configs); err != nil {
			return fmt.Errorf("topic %s: %w", t.Name, err)
		}
	}
	return nil
}

// baseLogConfig is the log settings of a topic that sets none: the
// broker's, with the dynamic log.* defaults of st applied.
func (b *Broker) baseLogConfig(st *cluster.State) storage.Config {
	return b.baseLogConfigFor(st, strconv.Itoa(int(b.nodeID)))
}

// baseLogConfigFor is baseLogConfig for broker id (this broker's static
// settings under id's dynamic ones).
func (b *Broker) baseLogConfigFor(st *cluster.State, id string) storage.Config {
	lc := b.cfg.Log
	if st == nil {
		return lc
	}
	for _, d := range dynamicBrokerConfigs {
		if d.log == nil {
			continue
		}
		if v, ok := st.BrokerConfig(id, d.name); ok {
			d.log(v, &lc)
		}
	}
	return lc
}

// BrokerConfigs describes broker name: this broker's settings for its own
// id (static ones read-only, dynamic ones with where their value comes
// from), or the cluster-wide dynamic defaults for "".
func (b *Broker) BrokerConfigs(name string) ([]protocol.ConfigEntry, error) {
	st := b.cl.fsm.State()
	if name == "" {
		var out []protocol.ConfigEntry
		for _, k := range slices.Sorted(maps.Keys(st.BrokerConfigs[""])) {
			v := st.BrokerConfigs[""][k]
			out = append(out, protocol.ConfigEntry{Name: k, Value: &v, Source: kmsg.ConfigSourceDynamicDefaultBrokerConfig})
		}
		return out, nil
	}
	if name != strconv.Itoa(int(b.nodeID)) {
		return nil, fmt.Errorf("%w: broker %q: ask that broker, or \"\" for the cluster defaults", protocol.ErrInvalidRequest, name)
	}
	out := b.staticBrokerConfigs(b.baseLogConfig(st))
	for _, d := range dynamicBrokerConfigs {
		i := slices.IndexFunc(out, func(e protocol.ConfigEntry) bool { return e.Name == d.name })
		e := protocol.ConfigEntry{Name: d.name, Default: true}
		if i >= 0 {
			e = out[i]
		}
		if v, ok := st.BrokerConfigs[name][d.name]; ok {
			e.Value, e.Default, e.ReadOnly, e.Source = &v, false, false, kmsg.ConfigSourceDynamicBrokerConfig
		} else if v, ok := st.BrokerConfigs[""][d.name]; ok {
			e.Value, e.Default, e.ReadOnly, e.Source = &v, false, false, kmsg.ConfigSourceDynamicDefaultBrokerConfig
		} else {
			e.ReadOnly = false
		}
		if i >= 0 {
			out[i] = e
		} else if e.Value != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// liveLogKey names the log settings SetConfig changes, to tell when they
// did.
func liveLogKey(lc storage.Config) string {
	return fmt.Sprint(lc.SegmentBytes, lc.SegmentMs, lc.IndexIntervalBytes, lc.MaxIndexBytes, lc.RetentionMs,
		lc.RetentionBytes, lc.MaxBatchBytes, lc.Compact, lc.KeepSegments, lc.DeleteRetention)
}

// topicLog is a topic's log settings and their liveLogKey (err: its
// configs do not make valid settings).
type topicLog struct {
	lc  storage.Config
	key string
	err error
}

// applyLogConfig gives a replica's open log the settings its topic's
// configs and the dynamic broker defaults now ask for, when they changed;
// topics caches each topic's settings over one reconcile. Reconcile only
// (reconcileMu).
func (b *Broker) applyLogConfig(st *cluster.State, k partKey, p *partition.Partition, topics map[string]topicLog) {
	tl, ok := topics[k.Topic]
	if !ok {
		t := st.Topics[k.Topic]
		if t == nil {
			return
		}
		tl.lc, tl.err = b.logConfig(st, t.Configs)
		tl.key = liveLogKey(tl.lc)
		topics[k.Topic] = tl
		if tl.err != nil {
			b.log.Error("topic configs", "topic", k.Topic, "err", tl.err)
		}
	}
	if tl.err != nil {
		return
	}
	prev, seen := b.cl.logCfg[k]
	if seen && prev == tl.key {
		return
	}
	if seen { // opened with the old settings: apply the new ones
		if err := p.SetLogConfig(tl.lc); err != nil {
			b.log.Error("apply topic configs", "topic", k.Topic, "partition", k.Partition, "err", err)
			return
		}
		b.log.Info("topic configs applied", "topic", k.Topic, "partition", k.Partition)
	}
	b.cl.logCfg[k] = tl.key
}

// throttleRate is the bytes per second this broker's adding replicas may
// fetch (0: no bound): follower.replication.throttled.rate, else
// leader.replication.throttled.rate.
func (b *Broker) throttleRate(st *cluster.State) int64 {
	id := strconv.Itoa(int(b.nodeID))
	for _, name := range []string{"follower.replication.throttled.rate", "leader.replication.throttled.rate"} {
		if v, ok := st.BrokerConfig(id, name); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
