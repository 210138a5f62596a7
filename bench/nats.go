package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsSystem is a JetStream cluster of nats-server processes on loopback,
// driven with nats.go's jetstream package.
type natsSystem struct {
	procs    []*proc
	urls     map[string]string // server_name -> client URL
	all      []string          // every client URL
	replicas int
	// maxPending is how many PublishAsync acks may be outstanding.
	maxPending int
	// leaders remembers each stream's leader, whose server the producer
	// and consumer connect to, as kgo connects to the partition leader.
	mu      sync.Mutex
	leaders map[string]string
}

// startNATS starts n servers with JetStream file storage under dir, their
// files named after label. With n > 1 they form one cluster over routes on
// loopback.
func startNATS(ctx context.Context, label, bin, dir string, n, maxPending int) (*natsSystem, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	s := &natsSystem{urls: map[string]string{}, replicas: n, maxPending: maxPending, leaders: map[string]string{}}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		conf := fmt.Sprintf("server_name: %q\nlisten: \"127.0.0.1:%d\"\njetstream {\n  store_dir: %q\n}\n",
			name, ports[2*i], filepath.Join(dir, label+"-"+name))
		if n > 1 {
			var routes []string
			for j := range n {
				if j != i {
					routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://127.0.0.1:%d", ports[2*j+1])))
				}
			}
			conf += fmt.Sprintf("cluster {\n  name: \"bench\"\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n}\n", ports[2*i+1], strings.Join(routes, ", "))
		}
		confPath := filepath.Join(dir, label+"-"+name+".conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			s.Close()
			return nil, err
		}
		p, err := startProc(label+" "+name, filepath.Join(dir, label+"-"+name+".log"), bin, "-c", confPath)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.procs = append(s.procs, p)
		url := fmt.Sprintf("nats://127.0.0.1:%d", ports[2*i])
		s.urls[name] = url
		s.all = append(s.all, url)
	}
	for i, p := range s.procs {
		if err := waitTCP(ctx, p, s.all[i][len("nats://"):]); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *natsSystem) Name() string { return "NATS" }

func (s *natsSystem) PIDs() []int {
	pids := make([]int, len(s.procs))
	for i, p := range s.procs {
		pids[i] = p.pid()
	}
	return pids
}

func (s *natsSystem) Alive() error { return allAlive(s.procs) }

func (s *natsSystem) Close() {
	var wg sync.WaitGroup
	for _, p := range s.procs {
		wg.Go(func() { p.kill(5 * time.Second) })
	}
	wg.Wait()
}

// connect opens a connection to url and a JetStream context on it.
func (s *natsSystem) connect(url string, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("mlog-bench"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// CreateLog creates a file-storage stream with one subject of the same
// name and one replica per server, and waits until it has a leader and
// every replica is current. A new cluster answers "insufficient
// resources" until JetStream's meta group knows every server; that is
// retried until ctx ends.
func (s *natsSystem) CreateLog(ctx context.Context, name string) error {
	nc, js, err := s.connect(s.all[0])
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{name},
		Storage:  jetstream.FileStorage,
		Replicas: s.replicas,
	}
	var last error
	for {
		if last != nil {
			select {
			case <-ctx.Done():
				return fmt.Errorf("create stream %s: %w (last: %v)", name, ctx.Err(), last)
			case <-time.After(200 * time.Millisecond):
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := js.CreateStream(rctx, cfg)
		if err != nil {
			cancel()
			last = err
			continue
		}
		info, err := st.Info(rctx)
		cancel()
		if err != nil {
			last = err
			continue
		}
		leader := ""
		if s.replicas == 1 {
			leader = "n1"
		} else if c := info.Cluster; c != nil && c.Leader != "" && len(c.Replicas) == s.replicas-1 {
			leader = c.Leader
			for _, r := range c.Replicas {
				if !r.Current {
					leader = ""
				}
			}
		}
		if _, ok := s.urls[leader]; !ok {
			last = fmt.Errorf("stream %s: no leader with every replica current: %+v", name, info.Cluster)
			continue
		}
		s.mu.Lock()
		s.leaders[name] = s.urls[leader]
		s.mu.Unlock()
		return nil
	}
}

func (s *natsSystem) leaderURL(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.leaders[name]; ok {
		return u
	}
	return s.all[0]
}

func (s *natsSystem) DeleteLog(ctx context.Context, name string) error {
	nc, js, err := s.connect(s.leaderURL(name))
	if err != nil {
		return err
	}
	defer nc.Close()
	return js.DeleteStream(ctx, name)
}

// NewProducer publishes with PublishAsync, at most s.maxPending acks
// outstanding. A single publisher on one connection to a stream created
// for it gets sequence k for its k-th message, which is how an ack is
// matched to its send. A publish goes out at once (there is no linger), so
// lowLatency changes nothing.
func (s *natsSystem) NewProducer(ctx context.Context, name string, _ bool, onAck func(seq int, err error)) (producer, error) {
	nc, js, err := s.connect(s.leaderURL(name),
		jetstream.WithPublishAsyncMaxPending(s.maxPending),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, ack *jetstream.PubAck) {
			onAck(int(ack.Sequence)-1, nil)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			onAck(-1, err)
		}),
	)
	if err != nil {
		return nil, err
	}
	// A publish blocked on a full window waits for acks rather than
	// failing after the default 200 ms stall; ctx bounds the run.
	return &natsProducer{nc: nc, js: js, subject: name, onAck: onAck,
		opts: []jetstream.PublishOpt{jetstream.WithStallWait(time.Minute)}}, nil
}

type natsProducer struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
	onAck   func(int, error)
	opts    []jetstream.PublishOpt
}

func (p *natsProducer) Send(value []byte) {
	if _, err := p.js.PublishAsync(p.subject, value, p.opts...); err != nil {
		p.onAck(-1, err)
	}
}

func (p *natsProducer) Close() { p.nc.Close() }

// NewConsumer reads the stream from its start with an ordered consumer
// (ephemeral, no acks, flow-controlled pulls of nats.go's default size).
func (s *natsSystem) NewConsumer(ctx context.Context, name string, onRecord func([]byte)) (consumer, error) {
	nc, js, err := s.connect(s.leaderURL(name))
	if err != nil {
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ordered consumer on %s: %w", name, err)
	}
	c := &natsConsumer{nc: nc}
	cc, err := cons.Consume(func(m jetstream.Msg) { onRecord(m.Data()) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { c.noteErr(err) }))
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.cc = cc
	return c, nil
}

type natsConsumer struct {
	nc   *nats.Conn
	cc   jetstream.ConsumeContext
	mu   sync.Mutex
	errs []error
}

// noteErr keeps what the consumer reported. The ordered consumer recovers
// from missed heartbeats by itself, so these are told, not fatal: a run
// fails only if records go missing.
func (c *natsConsumer) noteErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

func (c *natsConsumer) Close() error {
	c.cc.Stop()
	// The handler may be running; the caller reads what it wrote.
	select {
	case <-c.cc.Closed():
	case <-time.After(5 * time.Second):
	}
	c.nc.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		fmt.Fprintf(os.Stderr, "  NATS consumer reported %d errors (recovered), first: %v\n", len(c.errs), c.errs[0])
	}
	return nil
}
