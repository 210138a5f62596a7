package brokerclient

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

var (
	// ErrClientClosed means the client was closed.
	ErrClientClosed = errors.New("brokerclient: client closed")
	// ErrMalformedResponse means a response could not be decoded.
	ErrMalformedResponse = errors.New("brokerclient: malformed response")
)

// apiVersionsKey's response header is never flexible (KIP-511).
const apiVersionsKey = 18

// Client sends requests to one broker over one connection, one at a time:
// the broker-to-broker path (follower fetches, requests forwarded to the
// controller). Bodies are kmsg's; the caller sets each request's version.
// A failed request closes the connection; the next one dials again.
type Client struct {
	addr     string
	clientID string
	tls      *tls.Config // nil: plain TCP
	// user and password log in with SCRAM-SHA-512 after dialing ("": no
	// login).
	user, password string

	mu     sync.Mutex
	nc     net.Conn
	corr   int32
	closed bool
	// keep bounds the buffer responses are read into and kept for the next
	// one (KeepBuffer); 0 allocates each response anew.
	keep int
	buf  []byte
}

// KeepBuffer makes the client read every response of up to max bytes into
// one buffer it keeps, instead of allocating (and zeroing) a new one each
// time: a follower replicating 1 GB would otherwise allocate 1 GB. A
// response, and every byte slice decoded from it, is then valid only until
// the next request; the caller must copy what it keeps.
func (c *Client) KeepBuffer(max int) {
	c.mu.Lock()
	c.keep = max
	c.mu.Unlock()
}

// Security is how a client connects to a broker that asks for it: with
// TLS when TLS is set (its ServerName, if empty, is the address's host),
// and logged in with SASL SCRAM-SHA-512 as User when User is set.
type Security struct {
	TLS            *tls.Config
	User, Password string
}

// NewClient returns a client for addr; it dials on first use, securing the
// connection as sec says (nil: plain TCP, no login).
func NewClient(addr, clientID string, sec *Security) *Client {
	c := &Client{addr: addr, clientID: clientID}
	if sec == nil {
		return c
	}
	if tlsCfg := sec.TLS; tlsCfg != nil {
		if tlsCfg.ServerName == "" {
			tlsCfg = tlsCfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				tlsCfg.ServerName = host
			}
		}
		c.tls = tlsCfg
	}
	c.user, c.password = sec.User, sec.Password
	return c
}

// Addr is the broker's address.
func (c *Client) Addr() string { return c.addr }

// Request sends req and returns its response, within ctx's deadline.
func (c *Client) Request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClientClosed
	}
	if c.nc == nil {
		var (
			nc  net.Conn
			err error
		)
		if c.tls != nil {
			d := tls.Dialer{Config: c.tls}
			nc, err = d.DialContext(ctx, "tcp", c.addr)
		} else {
			var d net.Dialer
			nc, err = d.DialContext(ctx, "tcp", c.addr)
		}
		if err != nil {
			return nil, fmt.Errorf("brokerclient: dial %s: %w", c.addr, err)
		}
		c.nc = nc
		if c.user != "" {
			if err := c.login(ctx); err != nil {
				_ = c.nc.Close()
				c.nc = nil
				return nil, fmt.Errorf("brokerclient: SASL login to %s as %q: %w", c.addr, c.user, err)
			}
		}
	}
	resp, err := c.roundTrip(ctx, req)
	if err != nil {
		_ = c.nc.Close()
		c.nc = nil
	}
	return resp, err
}

func (c *Client) roundTrip(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = c.nc.SetDeadline(deadline)
	// Unblock at once if ctx is cancelled early. The callback may still be
	// running after roundTrip returns and Request drops c.nc, so it holds
	// its own reference to this connection.
	nc := c.nc
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()

	c.corr++
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(c.corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.clientID)))
	b = append(b, c.clientID...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if _, err := c.nc.Write(b); err != nil {
		return nil, c.ctxErr(ctx, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, c.ctxErr(ctx, err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 1<<30 {
		return nil, fmt.Errorf("%w: response size %d from %s", ErrMalformedResponse, n, c.addr)
	}
	var body []byte
	switch {
	case cap(c.buf) >= int(n):
		body = c.buf[:n]
	case int(n) <= c.keep:
		c.buf = make([]byte, n)
		body = c.buf
	default:
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(c.nc, body); err != nil {
		return nil, c.ctxErr(ctx, err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != c.corr {
		return nil, fmt.Errorf("%w: correlation id %d, want %d", ErrMalformedResponse, got, c.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != apiVersionsKey {
		if len(body) == 0 {
			return nil, fmt.Errorf("%w: empty response", ErrMalformedResponse)
		}
		// The response header's tagged fields: none are defined, skip them.
		r := kbin.Reader{Src: body}
		for n := r.Uvarint(); n > 0 && r.Ok(); n-- {
			r.Uvarint()
			r.Span(int(r.Uvarint()))
		}
		if !r.Ok() {
			return nil, fmt.Errorf("%w: response header tags", ErrMalformedResponse)
		}
		body = r.Src
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: %s response: %w", ErrMalformedResponse, kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("brokerclient: %s: %w", c.addr, err)
}

// Close closes the connection; later requests fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.nc != nil {
		err := c.nc.Close()
		c.nc = nil
		return err
	}
	return nil
}

// ErrLoginFailed means the broker refused the SASL login.
var ErrLoginFailed = errors.New("brokerclient: SASL login refused")

// login runs a SCRAM-SHA-512 exchange (SaslHandshake v1, then
// SaslAuthenticate) on the fresh connection.
func (c *Client) login(ctx context.Context) error {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "SCRAM-SHA-512"
	r, err := c.roundTrip(ctx, hs)
	if err != nil {
		return err
	}
	if code := r.(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
		return fmt.Errorf("%w: handshake: %w", ErrLoginFailed, kerr.ErrorForCode(code))
	}
	sess, msg, err := scram.Auth{User: c.user, Pass: c.password}.AsSha512Mechanism().Authenticate(ctx, c.addr)
	if err != nil {
		return err
	}
	for {
		ar := kmsg.NewPtrSASLAuthenticateRequest()
		ar.Version, ar.SASLAuthBytes = 1, msg
		r, err := c.roundTrip(ctx, ar)
		if err != nil {
			return err
		}
		resp := r.(*kmsg.SASLAuthenticateResponse)
		if resp.ErrorCode != 0 {
			return fmt.Errorf("%w: %w", ErrLoginFailed, kerr.ErrorForCode(resp.ErrorCode))
		}
		done, next, err := sess.Challenge(resp.SASLAuthBytes)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrLoginFailed, err)
		}
		if done {
			break
		}
		msg = next
	}
	return nil
}
