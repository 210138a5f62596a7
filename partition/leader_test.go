package partition

// Leader-side regressions found in review: each acknowledged a record that
// was not safely committed before its fix.

import (
	"context"
	"testing"
	"time"
)

func leaderRole(isr ...int32) Role {
	return Role{Self: 1, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2, 3}, ISR: isr, MinISR: 2, LagMax: time.Minute}
}

// A batch appended while ISR={1,2} must not be acknowledged once the ISR
// shrinks to {1}, below min.insync.replicas.
func TestAckAfterISRShrinkBelowMinRefused(t *testing.T) {
	p := openReplica(t)
	if err := p.SetRole(leaderRole(1, 2)); err != nil {
		t.Fatal(err)
	}
	p.ReplicaFetched(2, 0, time.Now())
	a, err := p.Append(plain("x"))
	if err != nil {
		t.Fatal(err)
	}
	r := leaderRole(1)
	r.PartitionEpoch = 1
	if err := p.SetRole(r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := p.WaitAck(ctx, a, -1); err == nil {
		t.Fatalf("acks=all acknowledged offset %d held by the leader alone (ISR {1}, min 2)", res.BaseOffset)
	}
}

// A follower proposed for the ISR counts for the high watermark while the
// proposal is in flight (Kafka's maximal ISR).
func TestHighWatermarkWaitsForPendingISRMember(t *testing.T) {
	p := openReplica(t)
	if err := p.SetRole(leaderRole(1, 2)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := p.Append(plain("a")); err != nil {
			t.Fatal(err)
		}
	}
	p.ReplicaFetched(2, 3, time.Now())
	if prop := p.ReplicaFetched(3, 3, time.Now()); prop == nil || len(prop.ISR) != 3 {
		t.Fatalf("no expansion proposed: %+v", prop)
	}
	if _, err := p.Append(plain("x")); err != nil {
		t.Fatal(err)
	}
	p.ReplicaFetched(2, 4, time.Now())
	r := leaderRole(1, 2, 3)
	r.PartitionEpoch = 1
	if err := p.SetRole(r); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw > 3 {
		t.Fatalf("high watermark %d, but ISR member 3 holds only up to 3", hw)
	}
}

// A fetch offset above the leader's end is not progress.
func TestOutOfRangeFetchNotCounted(t *testing.T) {
	p := openReplica(t)
	if err := p.SetRole(leaderRole(1, 2)); err != nil {
		t.Fatal(err)
	}
	p.ReplicaFetched(2, 0, time.Now())
	if prop := p.ReplicaFetched(3, 10, time.Now()); prop != nil {
		t.Errorf("a follower fetching at 10, above the leader's end, was proposed for the ISR: %+v", prop)
	}
	if _, err := p.Append(plain("x")); err != nil {
		t.Fatal(err)
	}
	p.ReplicaFetched(2, 10, time.Now())
	if hw := p.HighWatermark(); hw != 0 {
		t.Errorf("high watermark %d counts a follower at out-of-range offset 10", hw)
	}
}

// A batch waiting for acks=all on a leader that loses leadership, whose
// offset the new leader fills with another record, must not be
// acknowledged.
func TestAckAfterTruncateAndRefetchRefused(t *testing.T) {
	a, b := openReplica(t), openReplica(t)
	if err := a.SetRole(Role{Self: 1, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, MinISR: 1}); err != nil {
		t.Fatal(err)
	}
	app, err := a.Append(plain("X"))
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := a.WaitAck(ctx, app, -1)
		res <- err
	}()
	if err := b.SetRole(Role{Self: 2, LeaderID: 2, Epoch: 2, Replicas: []int32{1, 2}, ISR: []int32{2}, MinISR: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(plain("Y")); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRole(Role{Self: 1, LeaderID: 2, Epoch: 2, Replicas: []int32{1, 2}, ISR: []int32{2}, MinISR: 1}); err != nil {
		t.Fatal(err)
	}
	_, end := b.EndOffsetForEpoch(a.LatestEpoch()) // undefined (-1): B has no epoch 1
	if err := a.TruncateTo(max(end, 0)); err != nil {
		t.Fatal(err)
	}
	copyFrom(t, b, a, 0)
	a.SetHighWatermark(min(b.HighWatermark(), a.LogEndOffset()))
	if err := <-res; err == nil {
		t.Fatalf("X acknowledged at offset %d, which now holds the new leader's Y", app.res.BaseOffset)
	}
}
