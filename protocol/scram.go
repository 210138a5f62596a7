package protocol

// The server side of SCRAM (RFC 5802, RFC 7677) over stored keys, as Kafka
// runs it: one exchange is client-first, server-first, client-final,
// server-final. Like Kafka's ScramSaslServer, the client-final nonce must
// end with the server-first nonce rather than equal it: librdkafka sends
// its own nonce in front of the combined one.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/mlog/mlog/cluster"
)

var errScram = errors.New("protocol: SCRAM exchange failed")

// scramServer is one connection's exchange.
type scramServer struct {
	h      func() hash.Hash
	lookup func(user string) (cluster.ScramCredential, bool)

	step        int // 0: expecting client-first, 1: client-final, 2: done
	user        string
	nonce       string // client nonce + server nonce
	clientBare  string // client-first-message-bare
	serverFirst string
	cred        cluster.ScramCredential
}

// next answers one client message; done with a non-empty user means the
// client proved its password.
func (s *scramServer) next(msg []byte) (out []byte, user string, err error) {
	switch s.step {
	case 0:
		return s.first(string(msg))
	case 1:
		return s.final(string(msg))
	}
	return nil, "", fmt.Errorf("%w: exchange already over", errScram)
}

func (s *scramServer) first(m string) ([]byte, string, error) {
	// gs2-header: no channel binding ("n" or "y"), no authzid, or an
	// authzid equal to the user; then the bare message.
	parts := strings.SplitN(m, ",", 3)
	if len(parts) != 3 || (parts[0] != "n" && parts[0] != "y") {
		return nil, "", fmt.Errorf("%w: bad gs2 header", errScram)
	}
	s.clientBare = parts[2]
	attrs := strings.Split(s.clientBare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, "", fmt.Errorf("%w: client-first wants n= and r=", errScram)
	}
	user, ok := decodeSaslName(attrs[0][2:])
	if !ok || user == "" {
		return nil, "", fmt.Errorf("%w: bad user name", errScram)
	}
	if az := parts[1]; az != "" && az != "a="+attrs[0][2:] {
		return nil, "", fmt.Errorf("%w: authzid must be the user", errScram)
	}
	cnonce := attrs[1][2:]
	if cnonce == "" {
		return nil, "", fmt.Errorf("%w: empty client nonce", errScram)
	}
	cred, ok := s.lookup(user)
	if !ok {
		return nil, "", fmt.Errorf("%w: unknown user", errScram)
	}
	snonce := make([]byte, 24)
	_, _ = rand.Read(snonce)
	s.user, s.cred = user, cred
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(snonce)
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(int(cred.Iterations))
	s.step = 1
	return []byte(s.serverFirst), "", nil
}

func (s *scramServer) final(m string) ([]byte, string, error) {
	s.step = 2
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return nil, "", fmt.Errorf("%w: client-final without a proof", errScram)
	}
	withoutProof, proofB64 := m[:i], m[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, "", fmt.Errorf("%w: client-final wants c= and r=", errScram)
	}
	if !strings.HasSuffix(attrs[1][2:], s.nonce) {
		return nil, "", fmt.Errorf("%w: nonce mismatch", errScram)
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != s.h().Size() {
		return nil, "", fmt.Errorf("%w: bad proof", errScram)
	}
	auth := []byte(s.clientBare + "," + s.serverFirst + "," + withoutProof)
	clientSig := hmacOf(s.h, s.cred.StoredKey, auth)
	clientKey := make([]byte, len(proof))
	subtle.XORBytes(clientKey, proof, clientSig)
	sum := s.h()
	sum.Write(clientKey)
	if !hmac.Equal(sum.Sum(nil), s.cred.StoredKey) {
		return nil, "", fmt.Errorf("%w: invalid proof", errScram)
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(s.h, s.cred.ServerKey, auth))), s.user, nil
}

func hmacOf(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// decodeSaslName undoes RFC 5802's escaping of ',' (=2C) and '=' (=3D).
func decodeSaslName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == ',':
			return "", false
		case s[i] != '=':
			b.WriteByte(s[i])
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}
