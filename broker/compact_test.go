package broker_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A user topic with cleanup.policy=compact: after compaction a consumer
// from the start sees each key's latest value, at its original offset, and
// skips the gaps (and the emptied batches an idempotent producer leaves).
func TestCompactedUserTopic(t *testing.T) {
	_, b := startOne(t)
	adm := admin(t, b)
	ctx := ctxT(t)
	policy, seg := "compact", "16384"
	res, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &policy, "segment.bytes": &seg}, "prices")
	if err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	bad := "shred"
	if res, _ := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &bad}, "bad"); !errors.Is(res.Err, kerr.InvalidConfig) {
		t.Fatalf("cleanup.policy=shred: %v, want INVALID_CONFIG", res.Err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, "prices")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := cfgs.On("prices", nil); err != nil || !hasConfig(c.Configs, "cleanup.policy", "compact") {
		t.Fatalf("describe: %+v %v", c, err)
	}

	cl := client(t, b) // idempotent, as kgo is by default
	const keys, rounds = 20, 100
	written := map[int64]string{} // offset -> key=value
	latest := map[string]int64{}
	for r := range rounds {
		var recs []*kgo.Record
		for k := range keys {
			recs = append(recs, &kgo.Record{Topic: "prices", Key: fmt.Appendf(nil, "k%d", k), Value: fmt.Appendf(nil, "%d", r)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			written[rec.Offset] = string(rec.Key) + "=" + string(rec.Value)
			latest[string(rec.Key)] = rec.Offset
		}
	}
	p, err := b.Partition("prices", 0)
	if err != nil {
		t.Fatal(err)
	}
	before := p.Log().Size()
	b.RunRetention()
	if after := p.Log().Size(); after*2 > before {
		t.Fatalf("compaction left %d of %d bytes", after, before)
	}

	cons := client(t, b, kgo.ConsumeTopics("prices"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	end := int64(keys*rounds - 1)
	for len(got) == 0 || got[len(got)-1].Offset < end {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed up to %v: %v", got[len(got)-1].Offset, ctx.Err())
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatal(errs[0].Err)
		}
		got = append(got, fs.Records()...)
	}
	seen := map[int64]bool{}
	for _, r := range got {
		if w := written[r.Offset]; w != string(r.Key)+"="+string(r.Value) {
			t.Fatalf("offset %d: %s=%s, written %s", r.Offset, r.Key, r.Value, w)
		}
		seen[r.Offset] = true
	}
	for k, off := range latest {
		if !seen[off] {
			t.Fatalf("latest value of %s (offset %d) not consumed", k, off)
		}
	}
	if len(got) >= keys*rounds/2 {
		t.Fatalf("consumed %d of %d records after compaction", len(got), keys*rounds)
	}
}
