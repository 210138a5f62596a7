package cli

import (
	"slices"
	"testing"
)

// spread checks that no two brokers of live hold counts more than one apart
// and that no partition has a replica twice or off live.
func spread(t *testing.T, a assignment, live []int32, leaders bool) {
	t.Helper()
	load := a.loads(live, leaders)
	lo, hi := 1<<30, -1
	for _, b := range live {
		lo, hi = min(lo, load[b]), max(hi, load[b])
	}
	if hi-lo > 1 {
		t.Errorf("loads %v (leaders %t): more than one apart", load, leaders)
	}
	for k, reps := range a {
		for i, r := range reps {
			if !slices.Contains(live, r) || slices.Contains(reps[:i], r) {
				t.Errorf("%v: replicas %v", k, reps)
			}
		}
	}
}

// A fourth broker gets its share of replicas and leaderships with the
// fewest moves; a dead broker's replicas move first; the replication factor
// never changes; a balanced cluster needs nothing.
func TestPlanRebalance(t *testing.T) {
	cur := assignment{}
	for p := range 12 {
		cur[partitionKey{"t", int32(p)}] = []int32{int32(1 + p%3), int32(1 + (p+1)%3), int32(1 + (p+2)%3)}
	}
	live := []int32{1, 2, 3, 4}
	plan := planRebalance(cur, live)
	spread(t, plan, live, false)
	spread(t, plan, live, true)
	moved := 0
	for k, reps := range plan {
		if len(reps) != 3 {
			t.Fatalf("%v: %d replicas", k, len(reps))
		}
		for _, r := range reps {
			if !slices.Contains(cur[k], r) {
				moved++
			}
		}
	}
	if moved != 9 { // 36 replicas over 4 brokers: 9 go to the new one, no more
		t.Errorf("%d replicas moved, want 9", moved)
	}
	if again := planRebalance(plan, live); len(changes(plan, again)) != 0 {
		t.Errorf("a balanced plan changes again: %v", changes(plan, again))
	}
	// Broker 2 is gone: every replica it held moves to 1, 3 or 4.
	plan = planRebalance(cur, []int32{1, 3, 4})
	spread(t, plan, []int32{1, 3, 4}, false)
}

// Decommissioning moves exactly the broker's replicas, each to a broker
// the partition does not use yet; it cannot when no such broker is left.
func TestPlanDecommission(t *testing.T) {
	cur := assignment{}
	for p := range 8 {
		cur[partitionKey{"t", int32(p)}] = []int32{int32(1 + p%4), int32(1 + (p+1)%4)}
	}
	plan, ok := planDecommission(cur, []int32{1, 2, 3, 4}, 3)
	if !ok {
		t.Fatal("no plan")
	}
	for k, reps := range plan {
		if slices.Contains(reps, 3) || len(reps) != 2 || reps[0] == reps[1] {
			t.Errorf("%v: %v", k, reps)
		}
		if !slices.Contains(cur[k], 3) && !slices.Equal(reps, cur[k]) {
			t.Errorf("%v moved without a replica on broker 3: %v -> %v", k, cur[k], reps)
		}
	}
	spread(t, plan, []int32{1, 2, 4}, false)
	three := assignment{{"t", 0}: {1, 2, 3}}
	if _, ok := planDecommission(three, []int32{1, 2, 3}, 3); ok {
		t.Error("decommissioned a broker whose replica has nowhere to go")
	}
}
