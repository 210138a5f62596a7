package broker

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/internal/brokerclient"
)

// SCRAM iteration bounds, as Kafka's (KIP-554).
const (
	minScramIterations = 4096
	maxScramIterations = 16384
)

// ScramUsers returns every user with SCRAM credentials: mechanism to
// iteration count (all DescribeUserScramCredentials may show).
func (b *Broker) ScramUsers() map[string]map[int8]int32 {
	out := map[string]map[int8]int32{}
	for name, u := range b.cl.fsm.State().Users {
		m := map[int8]int32{}
		for mech, c := range u.Scram {
			m[mech] = c.Iterations
		}
		out[name] = m
	}
	return out
}

// AlterScram applies AlterUserScramCredentials on the controller
// (forwarded there from any other broker) and returns its per-user
// results.
func (b *Broker) AlterScram(ctx context.Context, req *kmsg.AlterUserSCRAMCredentialsRequest) (*kmsg.AlterUserSCRAMCredentialsResponse, error) {
	c := controllerClient{b}
	if !c.local() {
		return forward[*kmsg.AlterUserSCRAMCredentialsResponse](ctx, c, req)
	}
	resp, alter := scramChanges(req, b.cl.fsm.State())
	if len(alter.Deletions)+len(alter.Upserts) > 0 {
		if err := b.cl.ctrl.AlterScram(ctx, alter); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// scramChanges validates a request against st as Kafka does, user by user
// (a user with any bad alteration gets none), and derives each upsert's
// stored and server keys from the salted password, which is dropped.
func scramChanges(req *kmsg.AlterUserSCRAMCredentialsRequest, st *cluster.State) (*kmsg.AlterUserSCRAMCredentialsResponse, cluster.AlterScram) {
	type key struct {
		user string
		mech int8
	}
	var order []string
	failed := map[string]error{}
	seen := map[key]bool{}
	note := func(user string, mech int8) {
		if _, ok := failed[user]; !ok {
			failed[user] = nil
			order = append(order, user)
		}
		k := key{user, mech}
		if seen[k] && failed[user] == nil {
			failed[user] = fmt.Errorf("%w: %s given more than once for %q", kerr.DuplicateResource, mechanismName(mech), user)
		}
		seen[k] = true
	}
	fail := func(user string, err error) {
		if failed[user] == nil {
			failed[user] = err
		}
	}
	// named checks what deletions and upserts share.
	named := func(user string, mech int8) error {
		if user == "" {
			return fmt.Errorf("%w: empty user name", kerr.UnacceptableCredential)
		}
		if hashFor(mech) == nil {
			return fmt.Errorf("%w: mechanism %d", kerr.UnsupportedSaslMechanism, mech)
		}
		return nil
	}
	for _, d := range req.Deletions {
		note(d.Name, d.Mechanism)
		if err := named(d.Name, d.Mechanism); err != nil {
			fail(d.Name, err)
		} else if !hasScram(st, d.Name, d.Mechanism) {
			fail(d.Name, fmt.Errorf("%w: %q has no %s credential", kerr.ResourceNotFound, d.Name, mechanismName(d.Mechanism)))
		}
	}
	for _, u := range req.Upsertions {
		note(u.Name, u.Mechanism)
		switch err := named(u.Name, u.Mechanism); {
		case err != nil:
			fail(u.Name, err)
		case u.Iterations < minScramIterations || u.Iterations > maxScramIterations:
			fail(u.Name, fmt.Errorf("%w: %d iterations, want %d to %d", kerr.UnacceptableCredential, u.Iterations, minScramIterations, maxScramIterations))
		case len(u.Salt) == 0 || len(u.SaltedPassword) == 0:
			fail(u.Name, fmt.Errorf("%w: empty salt or salted password", kerr.UnacceptableCredential))
		}
	}
	var alter cluster.AlterScram
	for _, d := range req.Deletions {
		if failed[d.Name] == nil {
			alter.Deletions = append(alter.Deletions, cluster.ScramDeletion{User: d.Name, Mechanism: d.Mechanism})
		}
	}
	for _, u := range req.Upsertions {
		if failed[u.Name] == nil {
			alter.Upserts = append(alter.Upserts, cluster.ScramUpsert{User: u.Name, Mechanism: u.Mechanism,
				Credential: scramCredential(u.Mechanism, u.Salt, u.SaltedPassword, u.Iterations)})
		}
	}
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	for _, user := range order {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = user
		if err := failed[user]; err != nil {
			if ke, ok := kerrOf(err); ok {
				r.ErrorCode = ke.Code
			}
			msg := err.Error()
			r.ErrorMessage = &msg
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, alter
}

func kerrOf(err error) (*kerr.Error, bool) {
	for _, ke := range []*kerr.Error{kerr.DuplicateResource, kerr.UnacceptableCredential, kerr.UnsupportedSaslMechanism, kerr.ResourceNotFound} {
		if errors.Is(err, ke) {
			return ke, true
		}
	}
	return nil, false
}

func hasScram(st *cluster.State, user string, mech int8) bool {
	_, ok := st.Users[user].Credential(mech)
	return ok
}

// hashFor is the mechanism's hash, nil for one not supported.
func hashFor(mech int8) func() hash.Hash {
	switch mech {
	case cluster.ScramSHA256:
		return sha256.New
	case cluster.ScramSHA512:
		return sha512.New
	}
	return nil
}

func mechanismName(mech int8) string {
	switch mech {
	case cluster.ScramSHA256:
		return "SCRAM-SHA-256"
	case cluster.ScramSHA512:
		return "SCRAM-SHA-512"
	}
	return fmt.Sprintf("mechanism %d", mech)
}

// scramCredential derives what the server keeps (RFC 5802 §3): StoredKey
// = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword,
// "Server Key").
func scramCredential(mech int8, salt, salted []byte, iterations int32) cluster.ScramCredential {
	h := hashFor(mech)
	mac := func(msg string) []byte {
		m := hmac.New(h, salted)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	sum := h()
	sum.Write(mac("Client Key"))
	return cluster.ScramCredential{Salt: append([]byte(nil), salt...), Iterations: iterations, StoredKey: sum.Sum(nil), ServerKey: mac("Server Key")}
}

// ScramCredential returns what the metadata holds for user's mechanism.
func (b *Broker) ScramCredential(user string, mech int8) (cluster.ScramCredential, bool) {
	return b.cl.fsm.State().Users[user].Credential(mech)
}

// bootstrapIterations salts the bootstrap user's credentials.
const bootstrapIterations = 8192

// bootstrapUser is the bootstrap user's SCRAM-SHA-256 and -512
// credentials, with fresh salts, for the controller to give a cluster that
// has no users: the first way in to a cluster that requires SASL, and how
// brokers log in to each other.
func (b *Broker) bootstrapUser() (cluster.AlterScram, error) {
	var alter cluster.AlterScram
	for _, mech := range []int8{cluster.ScramSHA256, cluster.ScramSHA512} {
		h := hashFor(mech)
		salt := make([]byte, 24)
		_, _ = rand.Read(salt)
		salted, err := pbkdf2.Key(h, b.cfg.BootstrapPassword, salt, bootstrapIterations, h().Size())
		if err != nil {
			return alter, fmt.Errorf("broker: bootstrap user: %w", err)
		}
		alter.Upserts = append(alter.Upserts, cluster.ScramUpsert{User: b.cfg.BootstrapUser, Mechanism: mech,
			Credential: scramCredential(mech, salt, salted, bootstrapIterations)})
	}
	return alter, nil
}

// peerSecurity is how this broker connects to the others' inter-broker
// listeners: with PeerTLS over SSL and SASL_SSL, logged in as the bootstrap
// user over SASL_PLAINTEXT and SASL_SSL.
func (b *Broker) peerSecurity() *brokerclient.Security {
	ib := b.cfg.interBroker()
	sec := &brokerclient.Security{}
	if ib.tls() {
		sec.TLS = b.cfg.PeerTLS
	}
	if ib.sasl() {
		sec.User, sec.Password = b.cfg.BootstrapUser, b.cfg.BootstrapPassword
	}
	return sec
}
