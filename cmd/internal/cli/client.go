package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// leaderAddr returns host:port of the leader of topic's partition 0, as
// mlog's producer and consumer print it.
func leaderAddr(ctx context.Context, adm *kadm.Client, topic string) (string, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return "", err
	}
	t, ok := md.Topics[topic]
	if !ok || t.Err != nil {
		if ok {
			return "", t.Err
		}
		return "", fmt.Errorf("topic %q not found", topic)
	}
	p, ok := t.Partitions[0]
	if !ok || p.Leader < 0 {
		return "", fmt.Errorf("topic %q has no leader yet", topic)
	}
	for _, b := range md.Brokers {
		if b.NodeID == p.Leader {
			return fmt.Sprintf("%s:%d", b.Host, b.Port), nil
		}
	}
	return "", fmt.Errorf("leader %d of %q not among the brokers", p.Leader, topic)
}

// waitLeader retries leaderAddr until ctx ends.
func waitLeader(ctx context.Context, adm *kadm.Client, topic string) (string, error) {
	for {
		addr, err := leaderAddr(ctx, adm, topic)
		if err == nil {
			return addr, nil
		}
		select {
		case <-ctx.Done():
			return "", errors.Join(err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func seedOpts(addrs string) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(strings.Split(addrs, ",")...), kgo.MetadataMinAge(250 * time.Millisecond)}
}
