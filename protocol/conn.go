package protocol

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

const (
	produceKey     = 0
	apiVersionsKey = 18
)

// conn is one client connection: a reader that decodes and dispatches in
// order, a writer that answers in the same order.
type conn struct {
	s       *Server
	nc      net.Conn
	log     *slog.Logger
	pending chan *pendingReply
	// ctx ends when the connection does (or the server closes): replies
	// still waiting (long polls, fsync waits) then answer at once instead
	// of holding the connection open.
	ctx    context.Context
	cancel context.CancelFunc

	clientID string // of the request being dispatched (reader goroutine only)
	// rbuf is the last Produce request's frame, read into again: produce
	// handlers append the batches to the log before dispatch returns and
	// keep no slice of them, so a producer's connection reads every request
	// into one buffer instead of allocating (and zeroing) a new one each
	// time. Frames of other requests are never reused: their decoded
	// byte fields (group metadata, assignments) live on after dispatch.
	rbuf []byte
	// sessions are the fetch sessions this connection opened (reader
	// goroutine only).
	sessions fetchSessions
	// sasl is the connection's authentication (sasl.go; reader only).
	sasl saslState
	// certPrincipal is the principal of the TLS client certificate, or
	// User:ANONYMOUS; "" until the first request (authorize.go).
	certPrincipal string
	// remoteHost is the client's IP address, as ACLs name hosts.
	remoteHost string
}

// maxReusedFrame bounds the frame buffer a connection keeps between
// requests. A producer writing to many partitions sends frames of several
// MB (each partition's batch up to 1 MB): at the earlier 8 MiB bound a
// profile of 16 producers over 1,000 partitions spent 41% of the broker's
// CPU growing fresh buffers, and BenchmarkProduceRequests/partitions=16
// (16 MB frames) runs 1.6x faster with them kept. The cost is memory: an
// idle producer connection holds its largest frame, up to this bound.
const maxReusedFrame = 32 << 20

// pendingReply is one request's answer, ready when done is closed.
type pendingReply struct {
	correlationID int32
	key, version  int16
	done          chan struct{}
	resp          kmsg.Response
	fetch         *fetchReply
	raw           []byte // a pre-encoded body (ApiVersions fallback)
	abort         bool   // producing the reply failed: close the connection
	start         time.Time
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	remote := nc.RemoteAddr().String()
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	return &conn{s: s, nc: nc, log: s.log.With("remote", remote), remoteHost: acl.CanonicalHost(host),
		pending: make(chan *pendingReply, s.cfg.MaxInFlight), ctx: ctx, cancel: cancel}
}

// stopReading makes the reader's next read fail so it stops taking requests.
func (c *conn) stopReading() { _ = c.nc.SetReadDeadline(time.Now()) }

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer close(c.pending)
	defer c.cancel() // no more requests: waiting replies answer now
	defer c.sessions.closeAll()
	var size [4]byte
	for {
		if _, err := io.ReadFull(c.nc, size[:]); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, context.Canceled) && !isTimeout(err) {
				c.log.Debug("connection read ended", "err", err)
			}
			return
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 0 || n > c.s.cfg.MaxRequestBytes {
			c.log.Warn("closing connection: bad request size", "size", n, "max", c.s.cfg.MaxRequestBytes)
			return
		}
		reuse, whole := c.frameBuffer(int(n))
		buf, err := readFrame(c.nc, int(n), reuse)
		c.s.frameBytes.Add(-whole)
		c.rbuf = nil
		if err != nil {
			if !isTimeout(err) {
				c.log.Warn("closing connection: request cut short", "size", n, "err", err)
			}
			return
		}
		if err := c.dispatch(buf); err != nil {
			c.log.Warn("closing connection", "err", err)
			return
		}
		if len(buf) >= 2 && binary.BigEndian.Uint16(buf) == produceKey && cap(buf) <= maxReusedFrame {
			c.rbuf = buf[:0]
		}
	}
}

// frameBudget bounds the bytes of frames being read that were allocated
// whole when their size arrived, over all connections; past it frames grow
// as their bytes arrive (readFrame). Kafka allocates every frame whole; the
// bound keeps peers that announce big frames and send them slowly (or
// never) from holding more than this between them.
const frameBudget = 256 << 20

// frameBuffer is the buffer to read an n-byte frame into: the kept one if
// it is big enough, else while frameBudget allows a new one of n bytes
// (whole is then what the caller gives back to the budget once read), else
// none and readFrame grows one as bytes arrive.
func (c *conn) frameBuffer(n int) (buf []byte, whole int64) {
	if n <= cap(c.rbuf) || n <= frameChunk {
		return c.rbuf, 0
	}
	if c.s.frameBytes.Add(int64(n)) > frameBudget {
		c.s.frameBytes.Add(-int64(n))
		return c.rbuf, 0
	}
	// One allocation of the whole frame instead of growing to it (each
	// doubling copies and zeroes what it has).
	return make([]byte, 0, n), int64(n)
}

// frameChunk is the most readFrame allocates ahead of the bytes received.
const frameChunk = 64 << 10

// readFrame reads an n-byte request body, growing its buffer as bytes
// arrive (at most twice what was received, plus one chunk), so a peer that
// declares a huge frame and sends nothing holds no memory for it.
func readFrame(r io.Reader, n int, reuse []byte) ([]byte, error) {
	buf := reuse[:0]
	if cap(buf) < min(n, frameChunk) {
		buf = make([]byte, 0, min(n, frameChunk))
	}
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), max(cap(buf), frameChunk)))
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dispatch decodes one request and queues its reply. An error closes the
// connection.
func (c *conn) dispatch(buf []byte) (err error) {
	defer func() {
		// A bug must not take the broker down with it: log and drop the
		// connection.
		if r := recover(); r != nil {
			c.log.Error("handler panic", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("protocol: internal error handling request")
		}
	}()
	h, body, err := parseHeader(buf)
	if err != nil {
		return err
	}
	p := &pendingReply{correlationID: h.correlationID, key: h.apiKey, version: h.apiVersion, done: make(chan struct{}), start: time.Now()}
	c.s.inFlight.Add(1)
	queued := false
	defer func() {
		if !queued {
			c.s.inFlight.Add(-1) // answered by nobody: no response, or the connection closes
		}
	}()
	hd, ok := handlers[h.apiKey]
	if !ok || h.apiVersion < hd.min || h.apiVersion > hd.max {
		if h.apiKey == apiVersionsKey {
			// Answer in v0 with our ranges so the client can pick again.
			p.version, p.raw = 0, unsupportedApiVersions()
			close(p.done)
			queued = true
			c.pending <- p
			return nil
		}
		return fmt.Errorf("%w: api key %d version %d (%s) not supported", errMalformed, h.apiKey, h.apiVersion, kmsg.NameForKey(h.apiKey))
	}
	if !c.authenticated() && !saslAllowed(h.apiKey) {
		return fmt.Errorf("%w: %s", ErrUnauthenticated, kmsg.NameForKey(h.apiKey))
	}
	c.clientID = h.clientID
	c.identify()
	req := kmsg.RequestForKey(h.apiKey)
	req.SetVersion(h.apiVersion)
	if req.IsFlexible() {
		if body, err = skipHeaderTags(body); err != nil {
			return err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return fmt.Errorf("%w: %s v%d body: %w", errMalformed, kmsg.NameForKey(h.apiKey), h.apiVersion, err)
	}
	rep, err := hd.fn(c, req)
	if err != nil {
		return err
	}
	switch {
	case rep.none:
		return nil
	case rep.resp != nil:
		p.resp = rep.resp
		close(p.done)
	case rep.later != nil:
		c.goReply(p, func() { p.resp = rep.later(c.ctx) })
	case rep.fetch != nil:
		c.goReply(p, func() { p.fetch = rep.fetch(c.ctx) })
	}
	queued = true
	c.pending <- p
	if rep.closeAfter {
		return errAuthFailed
	}
	return nil
}

// goReply builds a reply on its own goroutine. A panic there is a bug: it
// is logged and the connection closed, and the broker goes on serving.
func (c *conn) goReply(p *pendingReply, build func()) {
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		defer close(p.done)
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("reply panic", "api", kmsg.NameForKey(p.key), "panic", r, "stack", string(debug.Stack()))
				p.abort = true
			}
		}()
		build()
	}()
}

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer c.s.forget(c)
	defer c.nc.Close()
	var buf []byte
	failed := false
	for p := range c.pending {
		<-p.done
		c.s.inFlight.Add(-1)
		if failed || p.abort {
			p.discard()
			if !failed {
				failed = true
				c.cancel()
				_ = c.nc.Close()
			}
			continue
		}
		var err error
		buf, err = c.write(buf[:0], p)
		c.s.cfg.Metrics.Request(p.key, time.Since(p.start))
		if err != nil {
			c.log.Debug("write failed; dropping the connection", "err", err)
			failed = true
			c.cancel()       // replies still waiting answer now, into the void
			_ = c.nc.Close() // the reader stops too
		}
	}
}

func (p *pendingReply) discard() {
	if p.fetch != nil {
		p.fetch.release()
	}
}

// write sends one response frame.
func (c *conn) write(buf []byte, p *pendingReply) ([]byte, error) {
	if p.fetch != nil {
		defer p.fetch.release()
		return buf, c.writeFetch(buf, p)
	}
	buf = append(buf, 0, 0, 0, 0)
	flexible := false
	if p.resp != nil {
		p.resp.SetVersion(p.version)
		flexible = p.resp.IsFlexible()
	}
	buf = appendResponseHeader(buf, p.correlationID, flexible, p.key)
	if p.raw != nil {
		buf = append(buf, p.raw...)
	} else {
		buf = p.resp.AppendTo(buf)
	}
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	_, err := c.nc.Write(buf)
	return buf, err
}
