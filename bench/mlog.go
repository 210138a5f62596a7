package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// mlogSystem is a cluster of `mlog server` processes on loopback, driven
// with franz-go: the client any Kafka user would reach for, on its
// defaults except for compression.
type mlogSystem struct {
	label    string
	procs    []*proc
	seeds    []string
	replicas int
}

// startMlog starts n nodes with data under dir. Node 1 bootstraps the Raft
// cluster; every node names the others with --peer. extra flags go to every
// node (e.g. --fsync never).
func startMlog(ctx context.Context, label, bin, dir string, n int, extra ...string) (*mlogSystem, error) {
	ports, err := freePorts(4 * n)
	if err != nil {
		return nil, err
	}
	serf := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[4*i]) }
	s := &mlogSystem{label: label, replicas: n}
	for i := range n {
		kafka := ports[4*i+1]
		args := []string{
			"server",
			"--node-id", fmt.Sprintf("node-%d", i+1),
			"--bind-addr", serf(i),
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports[4*i+2]),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", ports[4*i+3]),
			"--rpc-port", strconv.Itoa(kafka),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("%s-node%d", label, i+1)),
			"--log-level", "warn",
		}
		if i == 0 {
			args = append(args, "--bootstrap", "true")
		}
		for j := range n {
			if j != i {
				args = append(args, "--peer", fmt.Sprintf("node-%d=%s", j+1, serf(j)))
			}
		}
		args = append(args, extra...)
		p, err := startProc(fmt.Sprintf("%s node-%d", label, i+1), filepath.Join(dir, fmt.Sprintf("%s-node%d.log", label, i+1)), bin, args...)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.procs = append(s.procs, p)
		s.seeds = append(s.seeds, fmt.Sprintf("127.0.0.1:%d", kafka))
	}
	for i, p := range s.procs {
		if err := waitTCP(ctx, p, s.seeds[i]); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *mlogSystem) Name() string { return "mlog" }

func (s *mlogSystem) PIDs() []int {
	pids := make([]int, len(s.procs))
	for i, p := range s.procs {
		pids[i] = p.pid()
	}
	return pids
}

func (s *mlogSystem) Alive() error { return allAlive(s.procs) }

func (s *mlogSystem) Close() {
	var wg sync.WaitGroup
	for _, p := range s.procs {
		wg.Go(func() { p.kill(5 * time.Second) })
	}
	wg.Wait()
}

func (s *mlogSystem) admin() (*kadm.Client, error) {
	// kadm answers Metadata from kgo's cache, kept MetadataMinAge (5 s by
	// default) even when it says the topic is unknown; CreateLog polls a
	// topic it has just created.
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.seeds...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// CreateLog creates a one-partition topic with RF = the cluster size and
// min.insync.replicas = a majority, and waits until every replica is in
// the ISR, so that acks=all means what it means on a healthy cluster. A
// newly formed cluster refuses until its controller knows every broker;
// that is retried until ctx ends.
func (s *mlogSystem) CreateLog(ctx context.Context, name string) error {
	adm, err := s.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	minISR := strconv.Itoa(s.replicas/2 + 1)
	var last error
	for {
		if last != nil {
			select {
			case <-ctx.Done():
				return fmt.Errorf("create topic %s: %w (last: %v)", name, ctx.Err(), last)
			case <-time.After(200 * time.Millisecond):
			}
		}
		resp, err := adm.CreateTopic(ctx, 1, int16(s.replicas), map[string]*string{"min.insync.replicas": &minISR}, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			last = err
			continue
		}
		md, err := adm.Metadata(ctx, name)
		if err != nil {
			last = err
			continue
		}
		td, ok := md.Topics[name]
		if !ok || td.Err != nil || len(td.Partitions) != 1 {
			last = fmt.Errorf("metadata: %+v", td)
			continue
		}
		p := td.Partitions[0]
		if p.Err != nil || p.Leader < 0 || len(p.ISR) != s.replicas {
			last = fmt.Errorf("partition 0: leader %d, isr %v, err %v", p.Leader, p.ISR, p.Err)
			continue
		}
		return nil
	}
}

func (s *mlogSystem) DeleteLog(ctx context.Context, name string) error {
	adm, err := s.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	resp, err := adm.DeleteTopic(ctx, name)
	if err == nil {
		err = resp.Err
	}
	return err
}

// NewProducer is kgo with its defaults (acks=all, idempotent, 10 ms
// linger, 1 MB batches, 50 000 buffered records, one
// produce request in flight per broker) except that batches are
// not compressed; lowLatency takes the linger away (Kafka's linger.ms=0,
// its default before 4.0), which is how a producer is set up for latency.
func (s *mlogSystem) NewProducer(ctx context.Context, name string, lowLatency bool, onAck func(seq int, err error)) (producer, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.seeds...),
		kgo.DefaultProduceTopic(name),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
	if lowLatency {
		opts = append(opts, kgo.ProducerLinger(0))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &kgoProducer{ctx: ctx, cl: cl, onAck: onAck}, nil
}

type kgoProducer struct {
	ctx   context.Context
	cl    *kgo.Client
	onAck func(int, error)
	sent  int
}

func (p *kgoProducer) Send(value []byte) {
	seq := p.sent
	p.sent++
	p.cl.Produce(p.ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) { p.onAck(seq, err) })
}

func (p *kgoProducer) Close() { p.cl.Close() }

// NewConsumer reads the topic from its start with kgo's defaults.
func (s *mlogSystem) NewConsumer(ctx context.Context, name string, onRecord func([]byte)) (consumer, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(s.seeds...),
		kgo.ConsumeTopics(name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &kgoConsumer{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			for _, e := range fs.Errors() {
				if !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded) {
					c.errOnce.Do(func() { c.err = fmt.Errorf("fetch %s[%d]: %w", e.Topic, e.Partition, e.Err) })
				}
			}
			fs.EachRecord(func(r *kgo.Record) { onRecord(r.Value) })
		}
	}()
	return c, nil
}

type kgoConsumer struct {
	cl      *kgo.Client
	cancel  context.CancelFunc
	done    chan struct{}
	errOnce sync.Once
	err     error
}

// Close stops polling and returns the first fetch error seen.
func (c *kgoConsumer) Close() error {
	c.cancel()
	<-c.done
	c.cl.Close()
	return c.err
}
