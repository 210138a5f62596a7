package protocol

import (
	"crypto/sha256"
	"testing"

	"github.com/mlog/mlog/cluster"
)

// The SASL parsers take whatever a client sends before it has
// authenticated: no input may panic them or authenticate without the
// password.
//
//	go test -run x -fuzz FuzzSASLMessages -fuzztime 30s ./protocol/
func FuzzSASLMessages(f *testing.F) {
	f.Add([]byte("n,,n=user,r=abc"), []byte("c=biws,r=abcdef,p=AAAA"))
	f.Add([]byte("y,a=user,n=user,r=x"), []byte(",p="))
	f.Add([]byte("\x00user\x00pass"), []byte("n=,r="))
	f.Add([]byte("n,,n=us=2Cer=3D,r=q,ext=1"), []byte("c=biws,r=q,p==="))
	cred := cluster.ScramCredential{Salt: []byte("salt"), Iterations: 4096, StoredKey: make([]byte, 32), ServerKey: make([]byte, 32)}
	f.Fuzz(func(t *testing.T, first, final []byte) {
		s := &scramServer{h: sha256.New, lookup: func(string) (cluster.ScramCredential, bool) { return cred, true }}
		if _, user, err := s.next(first); err == nil && user != "" {
			t.Fatalf("authenticated on the first message %q", first)
		}
		if _, user, err := s.next(final); err == nil && user != "" {
			t.Fatalf("authenticated with %q, %q and no password", first, final)
		}
		_, _, _ = s.next(final) // a third message after the exchange
		_, _ = decodeSaslName(string(first))
	})
}
