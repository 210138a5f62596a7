package broker_test

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/internal/tlsfiles"
)

// BenchmarkTLS states what TLS costs: franz-go producing 1,000 random
// 1 KiB records per op (acks=all, no fsync, so the disk is out of it) to a
// one-node cluster, and consuming them back, over plain TCP and over TLS
// 1.3. Client and broker share this process and its CPUs.
//
//	go test -run x -bench TLS -benchtime 200x ./broker/
func BenchmarkTLS(b *testing.B) {
	vals := make([][]byte, 1000)
	for i := range vals {
		vals[i] = make([]byte, 1024)
		_, _ = rand.Read(vals[i])
	}
	for _, secure := range []bool{false, true} {
		name := "plain"
		if secure {
			name = "tls"
		}
		b.Run(name, func(b *testing.B) {
			ca := testutil.NewCA(b, "bench")
			cert, key := ca.Issue("node-1")
			c, _ := startOne(b, func(_ int, cfg *broker.Config) {
				cfg.SyncAcks = false
				if secure {
					var err error
					if cfg.TLS, err = tlsfiles.Server(cert, key, ""); err != nil {
						b.Fatal(err)
					}
					if cfg.PeerTLS, err = tlsfiles.Client(ca.File, "", ""); err != nil {
						b.Fatal(err)
					}
				}
			})
			if secure {
				cfg, err := tlsfiles.Client(ca.File, "", "")
				if err != nil {
					b.Fatal(err)
				}
				c.ClientOpts = []kgo.Opt{kgo.DialTLSConfig(cfg)}
			}
			c.CreateTopic("bench", 1, 1, nil)
			prod := c.Client(kgo.DefaultProduceTopic("bench"), kgo.ProducerBatchCompression(kgo.NoCompression()))
			produced := 0
			produce := func(b *testing.B) {
				recs := make([]*kgo.Record, len(vals))
				for i, v := range vals {
					recs[i] = &kgo.Record{Value: v}
				}
				if err := prod.ProduceSync(ctxT(b), recs...).FirstErr(); err != nil {
					b.Fatal(err)
				}
				produced += len(recs)
			}
			b.Run("produce", func(b *testing.B) {
				b.SetBytes(int64(len(vals) * 1024))
				for b.Loop() {
					produce(b)
				}
			})
			b.Run("consume", func(b *testing.B) {
				cons := c.Client(kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
				consumed := 0
				b.SetBytes(int64(len(vals) * 1024))
				for b.Loop() {
					if consumed+len(vals) > produced {
						b.StopTimer() // more to read than was produced: produce it untimed
						produce(b)
						b.StartTimer()
					}
					n := 0
					for n < len(vals) {
						fs := cons.PollFetches(ctxT(b))
						if err := fs.Err0(); err != nil {
							b.Fatal(fmt.Errorf("consume: %w", err))
						}
						n += fs.NumRecords()
					}
					consumed += n
				}
			})
		})
	}
}
