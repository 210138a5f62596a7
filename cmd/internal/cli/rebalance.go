package cli

// Planning replica moves: `mlog cluster rebalance` evens out replicas and
// preferred leaders over the live brokers; `mlog broker decommission`
// moves every replica off one broker. Both move as few replicas as they
// can, never put two replicas of a partition on one broker, and keep a
// partition's replication factor.

import (
	"slices"
	"strings"
)

// partitionKey names one partition.
type partitionKey struct {
	Topic     string
	Partition int32
}

// assignment is every partition's replicas, the first preferred to lead.
type assignment map[partitionKey][]int32

func (a assignment) keys() []partitionKey {
	keys := make([]partitionKey, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y partitionKey) int {
		if c := strings.Compare(x.Topic, y.Topic); c != 0 {
			return c
		}
		return int(x.Partition - y.Partition)
	})
	return keys
}

func (a assignment) clone() assignment {
	out := assignment{}
	for k, v := range a {
		out[k] = slices.Clone(v)
	}
	return out
}

// loads counts each broker's replicas (and, with leaders, preferred
// leaderships) over brokers.
func (a assignment) loads(brokers []int32, leaders bool) map[int32]int {
	out := map[int32]int{}
	for _, b := range brokers {
		out[b] = 0
	}
	for _, reps := range a {
		for i, r := range reps {
			if _, ok := out[r]; ok && (!leaders || i == 0) {
				out[r]++
			}
		}
	}
	return out
}

// planRebalance spreads replicas so that no two live brokers hold counts
// more than one apart, replicas on brokers not in live moved off first,
// then makes each broker the preferred leader of an even share.
func planRebalance(cur assignment, live []int32) assignment {
	plan := cur.clone()
	keys := plan.keys()
	load := plan.loads(live, false)
	// Replicas on brokers that are not live targets go first.
	for _, k := range keys {
		for i, r := range plan[k] {
			if _, ok := load[r]; !ok {
				if to, ok := leastLoaded(load, plan[k]); ok {
					plan[k][i] = to
					load[to]++
				}
			}
		}
	}
	// Then from the most to the least loaded, one replica at a time.
	for {
		hi, lo := extremes(load, live)
		if load[hi]-load[lo] <= 1 {
			break
		}
		moved := false
		for _, k := range keys {
			i := slices.Index(plan[k], hi)
			if i < 0 || slices.Contains(plan[k], lo) {
				continue
			}
			plan[k][i] = lo
			load[hi]--
			load[lo]++
			moved = true
			break
		}
		if !moved {
			break
		}
	}
	balanceLeaders(plan, keys, live)
	return plan
}

// balanceLeaders reorders each partition's replicas so that its first (the
// preferred leader) is the one leading fewest so far, the current first
// when it ties.
func balanceLeaders(plan assignment, keys []partitionKey, live []int32) {
	lead := map[int32]int{}
	for _, b := range live {
		lead[b] = 0
	}
	for _, k := range keys {
		reps := plan[k]
		best := 0
		for i, r := range reps {
			if lead[r] < lead[reps[best]] {
				best = i
			}
		}
		reps[0], reps[best] = reps[best], reps[0]
		lead[reps[0]]++
	}
}

// planDecommission moves every replica on broker gone to the least loaded
// live broker that does not hold the partition yet.
func planDecommission(cur assignment, live []int32, gone int32) (assignment, bool) {
	plan := cur.clone()
	targets := slices.DeleteFunc(slices.Clone(live), func(b int32) bool { return b == gone })
	load := plan.loads(targets, false)
	for _, k := range plan.keys() {
		i := slices.Index(plan[k], gone)
		if i < 0 {
			continue
		}
		to, ok := leastLoaded(load, plan[k])
		if !ok {
			return nil, false
		}
		plan[k][i] = to
		load[to]++
	}
	return plan, true
}

// leastLoaded is the broker of load with the fewest replicas that is not in
// have (lowest id on ties).
func leastLoaded(load map[int32]int, have []int32) (int32, bool) {
	best, found := int32(0), false
	for b, n := range load {
		if slices.Contains(have, b) {
			continue
		}
		if !found || n < load[best] || (n == load[best] && b < best) {
			best, found = b, true
		}
	}
	return best, found
}

// extremes are the most and least loaded of brokers (lowest id on ties).
func extremes(load map[int32]int, brokers []int32) (hi, lo int32) {
	hi, lo = brokers[0], brokers[0]
	for _, b := range brokers {
		if load[b] > load[hi] {
			hi = b
		}
		if load[b] < load[lo] {
			lo = b
		}
	}
	return hi, lo
}

// changes are the partitions whose replicas (or their order) plan changes.
func changes(cur, plan assignment) []partitionKey {
	var out []partitionKey
	for _, k := range plan.keys() {
		if !slices.Equal(cur[k], plan[k]) {
			out = append(out, k)
		}
	}
	return out
}
