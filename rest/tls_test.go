package rest_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/internal/tlsfiles"
	"github.com/mlog/mlog/rest"
)

// httpsClient is an HTTP client trusting ca and presenting cert (none
// when cert is "").
func httpsClient(t *testing.T, ca, cert, key string) *http.Client {
	t.Helper()
	tc, err := tlsfiles.Client(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
}

// Under mutual TLS the HTTP listener speaks TLS and a client
// certificate's subject is the request's principal, with the same ACLs as
// a Kafka client presenting it: nothing without an ACL, what the ACLs
// grant with one, on every node. A consumer instance made on one node is
// served from the others as its maker (forwarded over TLS with the
// broker's certificate) and not at all to another principal. A request
// without a certificate is refused (401), as the Kafka listener refuses
// it; probes need none; a
// certificate from another CA is refused; a client cannot claim another
// principal with the forwarding header.
func TestMutualTLS(t *testing.T) {
	ca := testutil.NewCA(t, "rest")
	const n = 3
	c := brokertest.Start(t, n, func(i int, cfg *broker.Config) {
		cfg.HTTPAddr, cfg.HTTPTLS = "127.0.0.1:0", true
		cfg.SuperUsers = []string{"User:CN=admin"}
		for j := range n {
			cfg.SuperUsers = append(cfg.SuperUsers, fmt.Sprintf("User:CN=node-%d", j+1))
		}
		cert, key := ca.Issue(fmt.Sprintf("node-%d", i+1))
		var err error
		if cfg.TLS, err = tlsfiles.Server(cert, key, ca.File); err != nil {
			t.Fatal(err)
		}
		if cfg.PeerTLS, err = tlsfiles.Client(ca.File, cert, key); err != nil {
			t.Fatal(err)
		}
	})
	acert, akey := ca.Issue("admin")
	atls, err := tlsfiles.Client(ca.File, acert, akey)
	if err != nil {
		t.Fatal(err)
	}
	c.ClientOpts = []kgo.Opt{kgo.DialTLSConfig(atls)}
	c.WaitBrokers(n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := c.Admin()
	testutil.Eventually(t, "the cluster over TLS", func() bool { _, err := adm.CreateTopic(ctx, 1, n, nil, "orders"); return err == nil })
	if _, err := adm.CreateTopic(ctx, 1, n, nil, "audit"); err != nil {
		t.Fatal(err)
	}
	appCert, appKey := ca.Issue("app")
	app := httpsClient(t, ca.File, appCert, appKey)
	otherCert, otherKey := ca.Issue("other")
	other := httpsClient(t, ca.File, otherCert, otherKey)
	anonymous := httpsClient(t, ca.File, "", "")
	do := func(cl *http.Client, node int, method, path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "https://"+c.Brokers[node].HTTPAddr().String()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", rest.ContentTypeJSON)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s on node %d: %v", method, path, node, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	topics := func(cl *http.Client, node int) []string {
		t.Helper()
		st, body := do(cl, node, "GET", "/topics", "")
		var names []string
		if st != 200 || json.Unmarshal([]byte(body), &names) != nil {
			t.Fatalf("GET /topics: %d %s", st, body)
		}
		return names
	}

	// No ACL: nothing seen, nothing written.
	if got := topics(app, 0); len(got) != 0 {
		t.Errorf("a certificate without ACLs sees topics %v", got)
	}
	st, body := do(app, 1, "POST", "/topics/orders", `{"records":[{"value":1}]}`)
	wantError(t, st, body, 403, 40301)
	// Granted: written through any node.
	grant := func(acls *kadm.ACLBuilder) {
		t.Helper()
		res, err := adm.CreateACLs(ctx, acls)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	grant(kadm.NewACLs().Allow("User:CN=app").Topics("orders").Groups("web").Operations(kadm.OpWrite, kadm.OpRead))
	testutil.Eventually(t, "the certificate's principal writing over HTTPS", func() bool {
		st, body := do(app, 2, "POST", "/topics/orders", `{"records":[{"value":1},{"value":2}]}`)
		return st == 200 && !strings.Contains(body, `"error_code":4`)
	})
	for node := range n {
		if got := topics(app, node); !slices.Equal(got, []string{"orders"}) {
			t.Errorf("node %d: the app sees %v, want only orders", node, got)
		}
	}
	st, body = do(app, 0, "POST", "/topics/audit", `{"records":[{"value":1}]}`)
	wantError(t, st, body, 403, 40301)
	// Claiming the admin's principal with the forwarding header is ignored:
	// the app is no broker.
	st, body = do(app, 0, "POST", "/topics/audit", `{"records":[{"value":1}]}`, rest.HeaderPrincipal, "User:CN=admin")
	wantError(t, st, body, 403, 40301)

	// A consumer instance made on node 0, used through nodes 1 and 2.
	st, body = do(app, 0, "POST", "/consumers/web", `{"name":"tls1","format":"json","auto.offset.reset":"earliest"}`)
	if st != 200 {
		t.Fatalf("create instance: %d %s", st, body)
	}
	base := "/consumers/web/instances/tls1"
	if st, body := do(app, 1, "POST", base+"/subscription", `{"topics":["orders"]}`); st != 204 {
		t.Fatalf("subscribe through node 1: %d %s", st, body)
	}
	st, body = do(app, 2, "POST", "/consumers/web", `{"name":"tls1","format":"json"}`)
	wantError(t, st, body, 409, 40902) // the name is taken on node 0
	var values []int
	testutil.Eventually(t, "records through node 2", func() bool {
		st, body := do(app, 2, "GET", base+"/records?timeout=500", "")
		var recs []struct{ Value int }
		if st != 200 || json.Unmarshal([]byte(body), &recs) != nil {
			t.Fatalf("records through node 2: %d %s", st, body)
		}
		for _, r := range recs {
			values = append(values, r.Value)
		}
		return len(values) >= 2
	})
	if !slices.Equal(values, []int{1, 2}) {
		t.Fatalf("read %v, want 1 2", values)
	}
	// Another principal does not find it, on its node or through another.
	for node := range n {
		st, body := do(other, node, "GET", base+"/records", "")
		wantError(t, st, body, 404, 40403)
	}
	// Without READ on the group, no instance of it reads.
	st, body = do(other, 1, "POST", "/consumers/web", `{"name":"o1","format":"json"}`)
	if st != 200 {
		t.Fatalf("create: %d %s", st, body)
	}
	st, body = do(other, 2, "POST", "/consumers/web/instances/o1/subscription", `{"topics":["orders"]}`)
	wantError(t, st, body, 403, 40301)
	if st, body := do(app, 1, "DELETE", base, ""); st != 204 {
		t.Fatalf("delete through node 1: %d %s", st, body)
	}
	st, body = do(app, 0, "GET", base+"/records", "")
	wantError(t, st, body, 404, 40403)

	// No certificate: the Kafka listener admits no one without one, nor
	// does the REST API (401); probes need none.
	st, body = do(anonymous, 0, "POST", "/topics/orders", `{"records":[{"value":1}]}`)
	wantError(t, st, body, 401, 40101)
	if st, _ := do(anonymous, 0, "GET", "/readyz", ""); st != 200 {
		t.Errorf("readyz without a certificate: %d", st)
	}
	// A certificate from another CA (named like the app's, and sent even
	// though the server asks for its CA's): the handshake fails.
	stranger := testutil.NewCA(t, "stranger")
	scert, skey := stranger.Issue("app")
	forged, err := tls.LoadX509KeyPair(scert, skey)
	if err != nil {
		t.Fatal(err)
	}
	sc := httpsClient(t, ca.File, "", "")
	sc.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &forged, nil
	}
	if resp, err := sc.Get("https://" + c.Brokers[0].HTTPAddr().String() + "/topics"); err == nil {
		resp.Body.Close()
		t.Error("a certificate from another CA was accepted")
	}
	// Plain HTTP is not answered as HTTP.
	if resp, err := http.Get("http://" + c.Brokers[0].HTTPAddr().String() + "/topics"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS listener")
		}
		resp.Body.Close()
	}
}
