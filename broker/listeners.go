package broker

import (
	"crypto/tls"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/protocol"
	"github.com/mlog/mlog/rest"
)

// Security protocols of a listener, as Kafka names them.
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// Listener is one Kafka listener (Kafka's listeners and
// advertised.listeners): a name clients' metadata is answered for, a
// security protocol, where it listens and the address clients are told.
type Listener struct {
	// Name is unique among the broker's listeners ("" only for the one
	// listener a Config without Listeners gets from ListenAddr).
	Name string
	// Protocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. SSL ones
	// use Config.TLS (with client certificates when it requires them),
	// SASL ones Config.SASLMechanisms.
	Protocol string
	// Addr is the host:port to listen on; port 0 takes a free one.
	Addr string
	// Advertised is the host:port clients of this listener connect to;
	// the address bound when empty.
	Advertised string
}

func (l Listener) tls() bool { return l.Protocol == ProtocolSSL || l.Protocol == ProtocolSASLSSL }
func (l Listener) sasl() bool {
	return l.Protocol == ProtocolSASLPlaintext || l.Protocol == ProtocolSASLSSL
}

var listenerName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// listeners are the configured listeners, or the one ListenAddr and
// AdvertisedAddr make, speaking TLS and SASL when those are set.
func (c *Config) listeners() []Listener {
	if len(c.Listeners) > 0 {
		return c.Listeners
	}
	p := ProtocolPlaintext
	switch {
	case c.TLS != nil && len(c.SASLMechanisms) > 0:
		p = ProtocolSASLSSL
	case c.TLS != nil:
		p = ProtocolSSL
	case len(c.SASLMechanisms) > 0:
		p = ProtocolSASLPlaintext
	}
	return []Listener{{Protocol: p, Addr: c.ListenAddr, Advertised: c.AdvertisedAddr}}
}

// interBroker is the listener brokers reach each other on: the one named
// InterBrokerListener, else the first.
func (c *Config) interBroker() Listener {
	ls := c.listeners()
	for _, l := range ls {
		if c.InterBrokerListener != "" && l.Name == c.InterBrokerListener {
			return l
		}
	}
	return ls[0]
}

func (c *Config) validateListeners() error {
	if len(c.Listeners) == 0 {
		if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
			return fmt.Errorf("%w: listen address %q: %w", ErrInvalidConfig, c.ListenAddr, err)
		}
		if c.InterBrokerListener != "" {
			return fmt.Errorf("%w: inter-broker listener %q but no listeners are named", ErrInvalidConfig, c.InterBrokerListener)
		}
	}
	seen := map[string]bool{}
	for _, l := range c.listeners() {
		if len(c.Listeners) > 0 {
			if !listenerName.MatchString(l.Name) {
				return fmt.Errorf("%w: listener name %q: want upper-case letters, digits and _", ErrInvalidConfig, l.Name)
			}
			if seen[l.Name] {
				return fmt.Errorf("%w: listener %s named twice", ErrInvalidConfig, l.Name)
			}
			seen[l.Name] = true
		}
		switch l.Protocol {
		case ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
		default:
			return fmt.Errorf("%w: listener %s: security protocol %q, want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", ErrInvalidConfig, l.Name, l.Protocol)
		}
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			return fmt.Errorf("%w: listener %s address %q: %w", ErrInvalidConfig, l.Name, l.Addr, err)
		}
		if l.Advertised != "" {
			if _, _, err := splitHostPort(l.Advertised); err != nil {
				return fmt.Errorf("%w: listener %s advertised address %q: %w", ErrInvalidConfig, l.Name, l.Advertised, err)
			}
		}
		if l.tls() && c.TLS == nil {
			return fmt.Errorf("%w: listener %s is %s but no TLS certificate is set", ErrInvalidConfig, l.Name, l.Protocol)
		}
		if l.sasl() && len(c.SASLMechanisms) == 0 {
			return fmt.Errorf("%w: listener %s is %s but no SASL mechanisms are set", ErrInvalidConfig, l.Name, l.Protocol)
		}
	}
	if c.InterBrokerListener != "" && !seen[c.InterBrokerListener] {
		return fmt.Errorf("%w: inter-broker listener %q is not among the listeners", ErrInvalidConfig, c.InterBrokerListener)
	}
	if c.interBroker().tls() && c.PeerTLS == nil {
		return fmt.Errorf("%w: brokers reach each other over TLS but no TLS is set for reaching them", ErrInvalidConfig)
	}
	return nil
}

// protocolConfig is the Kafka server configuration of one listener.
func (b *Broker) protocolConfig(l Listener) protocol.Config {
	pc := protocol.DefaultConfig()
	pc.Addr, pc.Listener = l.Addr, l.Name
	pc.MaxRequestBytes, pc.ShutdownGrace, pc.Logger, pc.Metrics = b.cfg.MaxRequestBytes, b.cfg.ShutdownGrace, b.log, b.metrics
	if l.tls() {
		pc.TLS = b.cfg.TLS
	}
	if l.sasl() {
		pc.SASL = &protocol.SASLConfig{Mechanisms: b.cfg.SASLMechanisms}
	}
	pc.Authorize, pc.SuperUsers = b.cfg.authorize(), b.cfg.superUsers()
	return pc
}

// advertisedListeners is the Serf tag naming every named listener's
// advertised address: "INTERNAL://10.0.0.1:9094,EXTERNAL://…".
func (b *Broker) advertisedListeners() string {
	var parts []string
	for i, l := range b.cfg.listeners() {
		if l.Name != "" {
			parts = append(parts, l.Name+"://"+b.advertisedAddr(i))
		}
	}
	return strings.Join(parts, ",")
}

// advertisedAddr is listener i's advertised address, the address it bound
// when none is configured.
func (b *Broker) advertisedAddr(i int) string {
	l := b.cfg.listeners()[i]
	if l.Advertised != "" {
		return l.Advertised
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if i < len(b.servers) && b.servers[i].Addr() != nil {
		return b.servers[i].Addr().String()
	}
	return l.Addr
}

// interBrokerIndex is the inter-broker listener's index in listeners().
func (b *Broker) interBrokerIndex() int {
	ib := b.cfg.interBroker()
	for i, l := range b.cfg.listeners() {
		if l.Name == ib.Name {
			return i
		}
	}
	return 0
}

// ListenerAddr is the address listener name is bound to (nil before Start
// or for no such listener).
func (b *Broker) ListenerAddr(name string) net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, l := range b.cfg.listeners() {
		if l.Name == name && i < len(b.servers) {
			return b.servers[i].Addr()
		}
	}
	return nil
}

// restProxy is the REST API of the HTTP listener, a Kafka client of this
// broker's first listener: logged in as each request's basic-auth user
// when that listener takes SASL, trusting the cluster's CAs (and showing
// no certificate) when it speaks TLS. Requests it cannot log in as (a
// client certificate's principal; anyone, when the authorizer is on or the
// listener wants a certificate) it serves as this broker over the
// inter-broker listener, checking the ACLs itself.
func (b *Broker) restProxy() (*rest.Proxy, error) {
	first := b.cfg.listeners()[0]
	cfg := rest.DefaultConfig()
	cfg.Logger, cfg.SASL, cfg.NodeID = b.log, first.sasl(), b.nodeID
	cfg.Seeds = func() []string {
		if a := b.Addr(); a != nil {
			return []string{a.String()}
		}
		return []string{first.Addr}
	}
	if first.tls() && b.cfg.PeerTLS != nil {
		tc := b.cfg.PeerTLS.Clone()
		tc.Certificates, tc.GetClientCertificate = nil, nil
		cfg.ClientOpts = append(cfg.ClientOpts, kgo.DialTLSConfig(tc))
	}
	if b.cfg.authorize() || (first.tls() && b.cfg.clientCerts()) || b.httpClientCerts() {
		supers := b.cfg.superUsers()
		cfg.Authorize = func(principal, host string, op acl.Operation, rt acl.ResourceType, name string) bool {
			return !b.cfg.authorize() || slices.Contains(supers, principal) || b.ACLs().Allowed(principal, host, op, rt, name)
		}
		cfg.Trusted = func(principal string) bool { return slices.Contains(supers, principal) }
		cfg.RequireAuth = first.sasl() || (first.tls() && b.cfg.clientCerts())
		ib := b.interBrokerIndex()
		cfg.BrokerSeeds = func() []string { return []string{b.advertisedAddr(ib)} }
		sec := b.peerSecurity()
		if sec.TLS != nil {
			cfg.BrokerOpts = append(cfg.BrokerOpts, kgo.DialTLSConfig(sec.TLS.Clone()))
		}
		if sec.User != "" {
			cfg.BrokerOpts = append(cfg.BrokerOpts, kgo.SASL(scram.Auth{User: sec.User, Pass: sec.Password}.AsSha512Mechanism()))
		}
	}
	cfg.Peers = b.httpPeers
	if b.cfg.PeerTLS != nil {
		cfg.PeerTLS = b.cfg.PeerTLS.Clone()
	}
	return rest.New(cfg)
}

// httpTLS is the HTTP listener's TLS: the Kafka listener's certificate,
// client certificates verified when given (probes and scrapes need none).
func (b *Broker) httpTLS() *tls.Config {
	if !b.cfg.HTTPTLS {
		return nil
	}
	tc := b.cfg.TLS.Clone()
	if tc.ClientCAs != nil {
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	} else {
		tc.ClientAuth = tls.NoClientCert
	}
	return tc
}

// httpClientCerts reports whether HTTP clients may name themselves with
// certificates.
func (b *Broker) httpClientCerts() bool {
	return b.cfg.HTTPTLS && b.cfg.TLS.ClientCAs != nil
}

// httpURL is the base URL this node's HTTP listener is reached at (its
// TagHTTP): the bound address, or for a wildcard bind the inter-broker
// listener's advertised host with the bound port; "" without a listener.
func (b *Broker) httpURL() string {
	a := b.HTTPAddr()
	if a == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, _, err := net.SplitHostPort(b.advertisedAddr(b.interBrokerIndex())); err == nil {
			host = h
		}
	}
	scheme := "http"
	if b.cfg.HTTPTLS {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// httpPeers are the other live brokers' HTTP base URLs.
func (b *Broker) httpPeers() []string {
	var out []string
	for id, br := range b.cl.fsm.State().Brokers {
		if id != b.nodeID && br.Alive && br.HTTPURL != "" {
			out = append(out, br.HTTPURL)
		}
	}
	slices.Sort(out)
	return out
}
