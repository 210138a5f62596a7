package protocol

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlog/mlog/metrics"
)

// Config configures the listener.
type Config struct {
	// Addr is the host:port to listen on for Kafka clients.
	Addr string
	// Listener is the listener's name: Metadata and FindCoordinator
	// answer with the brokers' addresses on the listener of this name.
	Listener string
	// MaxRequestBytes closes connections that send a bigger frame.
	MaxRequestBytes int32
	// MaxInFlight bounds the requests per connection awaiting a response.
	MaxInFlight int
	// ShutdownGrace is how long Close lets responses in flight be written.
	ShutdownGrace time.Duration
	Logger        *slog.Logger
	// Metrics, when set, counts bytes in and out and times requests.
	Metrics *metrics.Metrics
	// TLS, when set, makes the listener speak TLS (with its ClientAuth,
	// mutual TLS). Fetch responses then go through the TLS connection
	// instead of sendfile.
	TLS *tls.Config
	// SASL, when set, requires SASL authentication (sasl.go).
	SASL *SASLConfig
	// Authorize checks every request against the backend's ACLs
	// (authorize.go); SuperUsers (principals such as "User:admin") may do
	// anything.
	Authorize  bool
	SuperUsers []string
}

// DefaultConfig returns the defaults: mlog's Kafka port 9094, 100 MiB
// requests (Kafka's socket.request.max.bytes).
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:9094", MaxRequestBytes: 100 << 20, MaxInFlight: 64, ShutdownGrace: 5 * time.Second}
}

// Validate checks the settings (ErrInvalidConfig) and fills the logger.
func (c *Config) Validate() error {
	switch _, _, err := net.SplitHostPort(c.Addr); {
	case err != nil:
		return fmt.Errorf("%w: listen address %q: %w", ErrInvalidConfig, c.Addr, err)
	case c.MaxRequestBytes < 1024:
		return fmt.Errorf("%w: max request bytes %d, want at least 1024", ErrInvalidConfig, c.MaxRequestBytes)
	case c.MaxInFlight < 1:
		return fmt.Errorf("%w: max in flight %d", ErrInvalidConfig, c.MaxInFlight)
	case c.ShutdownGrace < 0:
		return fmt.Errorf("%w: shutdown grace %v", ErrInvalidConfig, c.ShutdownGrace)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Server accepts Kafka connections and serves them from a Backend.
type Server struct {
	cfg     Config
	backend Backend
	log     *slog.Logger

	ctx    context.Context // cancelled by Close: long polls return at once
	cancel context.CancelFunc

	inFlight atomic.Int64 // requests read and not yet answered
	// fetchSessions are open on all connections; incrementalFetches
	// counts requests served from one (fetch_session.go).
	fetchSessions, incrementalFetches atomic.Int64
	// sessionPartitions are the partitions all sessions hold
	// (maxServerSessionPartitions).
	sessionPartitions atomic.Int64
	// frameBytes are the bytes of frames being read that were allocated
	// whole (conn.go, frameBudget).
	frameBytes atomic.Int64

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer checks the config and returns a server; Start listens.
func NewServer(cfg Config, b Backend) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, backend: b, log: cfg.Logger, ctx: ctx, cancel: cancel, conns: map[*conn]struct{}{}}, nil
}

// Start listens on Config.Addr and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("protocol: listen on %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
	s.log.Info("kafka listener started", "addr", ln.Addr().String(), "tls", s.cfg.TLS != nil)
	return nil
}

// Addr returns the listening address.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: wait a little and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(2)
		s.mu.Unlock()
		go c.readLoop()
		go c.writeLoop()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Stats is a snapshot of the listener's load.
type Stats struct {
	Connections int
	InFlight    int64 // requests read and not yet answered
	// FetchSessions are open now; IncrementalFetches counts the Fetch
	// requests served from a session since start.
	FetchSessions, IncrementalFetches int64
	// SessionPartitions are the partitions all open sessions hold.
	SessionPartitions int64
}

// Stats returns the current connection and in-flight request counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Connections: len(s.conns), InFlight: s.inFlight.Load(),
		FetchSessions: s.fetchSessions.Load(), IncrementalFetches: s.incrementalFetches.Load(),
		SessionPartitions: s.sessionPartitions.Load()}
}

// Close stops accepting, stops reading new requests, answers those in
// flight (long polls return what they have), then closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.stopReading()
		// A client that stops reading must not hold shutdown up: its
		// writes get a grace period, then fail.
		_ = c.nc.SetWriteDeadline(time.Now().Add(s.cfg.ShutdownGrace))
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return err
}
