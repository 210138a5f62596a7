package protocol

// SASL authentication (Kafka's SASL_PLAINTEXT and SASL_SSL): with
// Config.SASL set, a connection is served nothing but ApiVersions,
// SaslHandshake (v1; v0 refused) and SaslAuthenticate (v0-v2) until it has
// authenticated; any other request closes it, and so does a failed
// exchange (after its answer). PLAIN checks the password against the
// user's stored SCRAM keys; SCRAM-SHA-256/512 (RFC 5802/7677, scram.go)
// runs over the stored keys. The password is never stored. KIP-368 re-authentication is not offered
// (session lifetime 0).

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/cluster"
)

// SASL mechanism names as clients send them.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// SASLConfig turns SASL on for the listener.
type SASLConfig struct {
	// Mechanisms are the mechanisms offered, of PLAIN, SCRAM-SHA-256 and
	// SCRAM-SHA-512.
	Mechanisms []string
}

// ErrUnauthenticated means a connection sent a request other than
// ApiVersions or the SASL ones before authenticating; it is closed.
var ErrUnauthenticated = errors.New("protocol: request before SASL authentication")

// errAuthFailed closes a connection once its failed SASL answer is sent.
var errAuthFailed = errors.New("protocol: SASL authentication failed")

// saslState is one connection's authentication (reader goroutine only).
type saslState struct {
	mechanism string // chosen by SaslHandshake; "" before
	scram     *scramServer
	principal string // set once authenticated
}

func (c *conn) authenticated() bool { return c.s.cfg.SASL == nil || c.sasl.principal != "" }

// saslAllowed reports whether key may be served before authentication.
func saslAllowed(key int16) bool {
	return key == apiVersionsKey || key == saslHandshakeKey || key == saslAuthenticateKey
}

const (
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36
)

func init() {
	// v0 is advertised because librdkafka requires it to be before it
	// uses SASL at all, but a v0 handshake (raw SASL tokens after it, no
	// SaslAuthenticate) is refused: clients that can, use v1.
	register(saslHandshakeKey, 0, 1, handleSaslHandshake)
	register(saslAuthenticateKey, 0, 2, handleSaslAuthenticate)
}

func handleSaslHandshake(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	cfg := c.s.cfg.SASL
	if cfg != nil {
		resp.SupportedMechanisms = slices.Clone(cfg.Mechanisms)
	}
	switch {
	case req.Version < 1:
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return reply{resp: resp, closeAfter: true}, nil
	case cfg == nil || !slices.Contains(cfg.Mechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	case c.sasl.mechanism != "" || c.sasl.principal != "":
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return reply{resp: resp, closeAfter: true}, nil
	default:
		c.sasl.mechanism = req.Mechanism
		if h := scramHash(req.Mechanism); h != nil {
			mech := scramMechanism(req.Mechanism)
			c.sasl.scram = &scramServer{h: h, lookup: func(user string) (cluster.ScramCredential, bool) {
				return c.s.backend.ScramCredential(user, mech)
			}}
		}
	}
	return reply{resp: resp}, nil
}

func handleSaslAuthenticate(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	fail := func(code int16, msg string) (reply, error) {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return reply{resp: resp, closeAfter: true}, nil
	}
	if c.sasl.mechanism == "" || c.sasl.principal != "" {
		return fail(kerr.IllegalSaslState.Code, "SaslAuthenticate without a SaslHandshake first")
	}
	if c.sasl.mechanism == MechanismPlain {
		user, ok := c.checkPlain(req.SASLAuthBytes)
		if !ok {
			return fail(kerr.SaslAuthenticationFailed.Code, "authentication failed: invalid credentials")
		}
		c.sasl.principal = user
		return reply{resp: resp}, nil
	}
	out, user, err := c.sasl.scram.next(req.SASLAuthBytes)
	resp.SASLAuthBytes = out
	if err != nil {
		c.log.Debug("SASL authentication failed", "mechanism", c.sasl.mechanism, "err", err)
		return fail(kerr.SaslAuthenticationFailed.Code, "authentication failed: invalid credentials")
	}
	if user != "" {
		c.sasl.principal = user
	}
	return reply{resp: resp}, nil
}

func scramHash(mechanism string) func() hash.Hash {
	switch mechanism {
	case MechanismScramSHA256:
		return sha256.New
	case MechanismScramSHA512:
		return sha512.New
	}
	return nil
}

func scramMechanism(mechanism string) int8 {
	if mechanism == MechanismScramSHA512 {
		return cluster.ScramSHA512
	}
	return cluster.ScramSHA256
}

// checkPlain verifies a PLAIN message (authzid NUL user NUL password)
// against the user's stored SCRAM keys: the password salted as that
// credential was must give its stored key.
func (c *conn) checkPlain(msg []byte) (string, bool) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || (len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1])) {
		return "", false
	}
	user, password := string(parts[1]), string(parts[2])
	for _, m := range []struct {
		mech int8
		h    func() hash.Hash
	}{{cluster.ScramSHA512, sha512.New}, {cluster.ScramSHA256, sha256.New}} {
		cred, ok := c.s.backend.ScramCredential(user, m.mech)
		if !ok {
			continue
		}
		salted, err := pbkdf2.Key(m.h, password, cred.Salt, int(cred.Iterations), m.h().Size())
		if err != nil {
			return "", false
		}
		mac := hmac.New(m.h, salted)
		mac.Write([]byte("Client Key"))
		sum := m.h()
		sum.Write(mac.Sum(nil))
		return user, hmac.Equal(sum.Sum(nil), cred.StoredKey)
	}
	return "", false
}
