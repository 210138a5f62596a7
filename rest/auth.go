package rest

// Who a request acts as, and the Kafka client that serves it.
//
// Under SASL, HTTP basic credentials of a SCRAM user log the request's
// Kafka client in as that user, so the brokers enforce its ACLs. A request
// the proxy cannot log in as — a TLS client certificate's principal, or
// User:ANONYMOUS when Config.Authorize is set — is served by the broker's
// own client, and the proxy checks the same ACLs (Config.Authorize) before
// each operation, naming the operation and resource Kafka's API would.

import (
	"net"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mlog/mlog/acl"
)

// Headers of a request another node forwards (a consumer instance it does
// not hold). HeaderPrincipal and HeaderHost name the client it came from;
// they count only on a connection whose certificate names a principal
// Config.Trusted trusts (a broker). A forwarded request is never forwarded
// again.
const (
	HeaderForwarded = "X-Mlog-Forwarded"
	HeaderPrincipal = "X-Mlog-Principal"
	HeaderHost      = "X-Mlog-Client-Host"
)

// identity is who a request acts as.
type identity struct {
	principal string // "" when nothing authenticates requests
	host      string
	// key names the Kafka client that serves it (the client cache's key);
	// owner names who may use a consumer instance it creates.
	key, owner string
	opts       []kgo.Opt // every option of that client
	// check, when set, is the ACL decision the proxy makes itself: the
	// client is the broker's.
	check func(principal, host string, op acl.Operation, rt acl.ResourceType, name string) bool
}

// may reports whether the request may perform op on the resource. With a
// client logged in as the user, the brokers decide instead.
func (id *identity) may(op acl.Operation, rt acl.ResourceType, name string) bool {
	return id.check == nil || id.check(id.principal, id.host, op, rt, name)
}

func (id *identity) mayTopic(op acl.Operation, topic string) bool {
	return id.may(op, acl.ResourceTopic, topic)
}

func (id *identity) mayGroup(op acl.Operation, group string) bool {
	return id.may(op, acl.ResourceGroup, group)
}

// identify works out who the request acts as: 401 under SASL without
// basic credentials or a client certificate the proxy may act for.
func (p *Proxy) identify(r *http.Request) (*identity, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	host = acl.CanonicalHost(host)
	cert := ""
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		cert = acl.CertificatePrincipal(r.TLS.VerifiedChains[0][0])
	}
	if fwd := r.Header.Get(HeaderPrincipal); fwd != "" && cert != "" && p.cfg.Trusted != nil && p.cfg.Trusted(cert) {
		cert = fwd
		if h := r.Header.Get(HeaderHost); h != "" {
			host = acl.CanonicalHost(h)
		}
	}
	if p.cfg.SASL {
		if user, pass, ok := r.BasicAuth(); ok && user != "" {
			key := "sasl\x00" + user + "\x00" + pass
			return &identity{principal: "User:" + user, host: host, key: key, owner: key,
				opts: append(p.baseOpts(), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))}, nil
		}
		if cert == "" || p.cfg.Authorize == nil {
			return nil, errorf(http.StatusUnauthorized, 40101, "authentication required: HTTP basic credentials of a SCRAM user")
		}
	}
	if p.cfg.Authorize == nil {
		return &identity{opts: p.baseOpts()}, nil
	}
	if cert == "" {
		if p.cfg.RequireAuth {
			// The Kafka listener admits no one unauthenticated: neither
			// does its HTTP face.
			return nil, errorf(http.StatusUnauthorized, 40101, "authentication required: a client certificate the cluster's CAs signed")
		}
		cert = acl.Anonymous
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(p.cfg.BrokerSeeds()...)}, p.commonOpts()...)
	return &identity{principal: cert, host: host, key: "broker", owner: "cert\x00" + cert,
		opts: append(opts, p.cfg.BrokerOpts...), check: p.cfg.Authorize}, nil
}

// forbidden is REST Proxy's answer to an operation the ACLs refuse.
func forbidden(op acl.Operation, rt acl.ResourceType, name string) error {
	return errorf(http.StatusForbidden, 40301, "Not authorized to %s %s %s.", op, rt, name)
}
