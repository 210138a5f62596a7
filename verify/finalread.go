package verify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// retryBackoff spaces retries of a request the cluster refused (no leader
// yet, a broker restarting).
const retryBackoff = 250 * time.Millisecond

// pollSlice bounds one poll of the final read, so the high watermarks it
// reads towards are refreshed while a partition has no leader.
const pollSlice = 2 * time.Second

// offsetRange is a partition's log start and high watermark.
type offsetRange struct{ start, end int64 }

// listOffsets returns every partition's log start and high watermark,
// retrying until all partitions answer or ctx ends.
func listOffsets(ctx context.Context, adm *kadm.Client, topic string, partitions int32) (map[int32]offsetRange, error) {
	for {
		out, err := listOffsetsOnce(ctx, adm, topic, partitions)
		if err == nil {
			return out, nil
		}
		if werr := wait(ctx, retryBackoff); werr != nil {
			return nil, fmt.Errorf("list offsets of %q: %w (last error: %w)", topic, werr, err)
		}
	}
}

func listOffsetsOnce(ctx context.Context, adm *kadm.Client, topic string, partitions int32) (map[int32]offsetRange, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]offsetRange{}
	for p := range partitions {
		s, ok1 := starts.Lookup(topic, p)
		e, ok2 := ends.Lookup(topic, p)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("partition %d: no offsets listed", p)
		}
		if err := errors.Join(s.Err, e.Err); err != nil {
			return nil, fmt.Errorf("partition %d: %w", p, err)
		}
		out[p] = offsetRange{s.Offset, e.Offset}
	}
	return out, nil
}

// wait returns after d, or ctx's error if it ends first.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finalRead reads every partition from its log start to its high
// watermark. It is done when it has read up to the high watermarks and a
// fresh listing shows them unchanged; until ctx ends it retries, since the
// cluster may still be electing leaders or catching followers up. On
// timeout it returns what it read with an error saying what is missing.
func finalRead(ctx context.Context, cfg *Config, adm *kadm.Client, base []kgo.Opt, partitions int32) (map[int32]*PartitionLog, error) {
	logs := map[int32]*PartitionLog{}
	for p := range partitions {
		logs[p] = &PartitionLog{Records: map[int64]string{}}
	}
	from := map[int32]kgo.Offset{}
	for p := range partitions {
		from[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(append(slices.Clone(base), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: from}))...)
	if err != nil {
		return logs, err
	}
	defer cl.Close()
	next := map[int32]int64{} // last offset read + 1
	ranges, err := listOffsets(ctx, adm, cfg.Topic, partitions)
	if err != nil {
		return logs, fmt.Errorf("final read: %w", err)
	}
	for {
		if behind := behindOf(ranges, next); len(behind) == 0 {
			fresh, err := listOffsets(ctx, adm, cfg.Topic, partitions)
			if err != nil {
				return fill(logs, ranges), fmt.Errorf("final read: %w", err)
			}
			if maps.Equal(fresh, ranges) {
				// Anything read at or above a high watermark that stayed
				// put was truncated away since: the log no longer has it.
				for p, pl := range logs {
					maps.DeleteFunc(pl.Records, func(o int64, _ string) bool { return o >= ranges[p].end })
				}
				return fill(logs, ranges), nil
			}
			ranges = fresh
			continue
		}
		pollCtx, cancel := context.WithTimeout(ctx, pollSlice)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		fetches.EachRecord(func(r *kgo.Record) {
			pl := logs[r.Partition]
			if pl == nil {
				return
			}
			if r.Attrs.IsControl() {
				next[r.Partition] = max(next[r.Partition], r.Offset+1)
				return
			}
			v := string(r.Value)
			if old, ok := pl.Records[r.Offset]; ok && old != v {
				pl.Replaced = append(pl.Replaced, Observation{r.Partition, r.Offset, old})
			}
			pl.Records[r.Offset] = v
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		})
		if ctx.Err() != nil {
			behind := behindOf(ranges, next)
			var why []string
			for _, p := range behind {
				why = append(why, fmt.Sprintf("partition %d read to %d of high watermark %d", p, max(next[p], ranges[p].start), ranges[p].end))
			}
			return fill(logs, ranges), fmt.Errorf("final read gave up: %v: %w", why, ctx.Err())
		}
		if fetches.NumRecords() == 0 {
			// Refresh the targets: a high watermark may have moved
			// back (a truncated log) and never be reached.
			if fresh, err := listOffsetsOnce(ctx, adm, cfg.Topic, partitions); err == nil {
				ranges = fresh
			}
		}
	}
}

// behindOf lists the partitions not yet read up to their high watermark.
func behindOf(ranges map[int32]offsetRange, next map[int32]int64) []int32 {
	var out []int32
	for _, p := range slices.Sorted(maps.Keys(ranges)) {
		r := ranges[p]
		if r.end > r.start && next[p] < r.end {
			out = append(out, p)
		}
	}
	return out
}

// fill sets each log's offsets from the last listing.
func fill(logs map[int32]*PartitionLog, ranges map[int32]offsetRange) map[int32]*PartitionLog {
	for p, r := range ranges {
		if pl := logs[p]; pl != nil {
			pl.LogStartOffset, pl.HighWatermark = r.start, r.end
		}
	}
	return logs
}
