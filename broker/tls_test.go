package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/internal/tlsfiles"
)

// tlsCluster starts n brokers whose Kafka listeners speak TLS with
// certificates from ca, requiring client certificates from it when mutual
// is set; the brokers reach each other with their own certificates. With
// mutual TLS the ACL authorizer is on, and the brokers (CN=node-N) and
// CN=admin are super users.
func tlsCluster(t *testing.T, n int, ca *testutil.CA, mutual bool) *brokertest.Cluster {
	t.Helper()
	c := brokertest.Start(t, n, func(i int, cfg *broker.Config) {
		if mutual {
			cfg.SuperUsers = []string{"User:CN=admin"}
			for j := range n {
				cfg.SuperUsers = append(cfg.SuperUsers, fmt.Sprintf("User:CN=node-%d", j+1))
			}
		}
		cert, key := ca.Issue(fmt.Sprintf("node-%d", i+1))
		clientCA := ""
		if mutual {
			clientCA = ca.File
		}
		var err error
		if cfg.TLS, err = tlsfiles.Server(cert, key, clientCA); err != nil {
			t.Fatal(err)
		}
		if cfg.PeerTLS, err = tlsfiles.Client(ca.File, cert, key); err != nil {
			t.Fatal(err)
		}
	})
	return c
}

func clientTLS(t *testing.T, caFile, cert, key string) kgo.Opt {
	t.Helper()
	cfg, err := tlsfiles.Client(caFile, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return kgo.DialTLSConfig(cfg)
}

// ping is what a new client with opts (no retries) gets pinging c: nil when
// it is served.
func ping(t *testing.T, c *brokertest.Cluster, opts ...kgo.Opt) error {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Seeds()...), kgo.RequestRetries(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// Three brokers with TLS and client certificates required: a client with a
// certificate from the cluster's CA produces and consumes, and the RF3
// topic's followers replicate over TLS; a client that does not trust the
// CA, one that presents no certificate, and one speaking plain TCP are
// refused. The certificate's subject is the client's principal: without
// an ACL for it the client may not write; with one naming its whole
// subject (as Kafka writes it) it may.
func TestTLSMutual(t *testing.T) {
	ca := testutil.NewCA(t, "cluster")
	c := tlsCluster(t, 3, ca, true)
	acert, akey := ca.Issue("admin")
	c.ClientOpts = []kgo.Opt{clientTLS(t, ca.File, acert, akey)}
	waitServing(c)
	adm := c.Admin()
	if _, err := adm.CreateTopic(ctxT(t), 1, 3, nil, "secure"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	want := values(50, "v")
	produceValues(t, c.Client(), "secure", want)
	checkRecords(t, consumeCluster(t, c, "secure", len(want)), want)
	sameLogs(t, c, "secure", 0)

	cert, key := ca.IssueFor(pkix.Name{CommonName: "billing-app", Organization: []string{"Acme"}, OrganizationalUnit: []string{"billing"}})
	app, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...), clientTLS(t, ca.File, cert, key), kgo.RecordRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := produceErr(t, app, "secure"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("a client certificate without ACLs producing: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	grant(t, c, kadm.NewACLs().Allow("User:CN=billing-app,OU=billing,O=Acme").Topics("secure").Operations(kadm.OpWrite))
	testutil.Eventually(t, "the certificate's principal writing", func() bool { return produceErr(t, app, "secure") == nil })

	other := testutil.NewCA(t, "other")
	ocert, okey := other.Issue("stranger")
	if err := ping(t, c, clientTLS(t, other.File, cert, key)); err == nil {
		t.Error("a client that does not trust the cluster's CA connected")
	}
	if err := ping(t, c, clientTLS(t, ca.File, ocert, okey)); err == nil {
		t.Error("a client with a certificate from another CA connected")
	}
	if err := ping(t, c, clientTLS(t, ca.File, "", "")); err == nil {
		t.Error("a client without a certificate connected")
	}
	if err := ping(t, c); err == nil {
		t.Error("a plain TCP client was answered")
	}
}

// One broker with TLS and no client certificates: a client trusting the
// CA works; the handshake fails for one that does not.
func TestTLSServerOnly(t *testing.T) {
	ca := testutil.NewCA(t, "single")
	c := tlsCluster(t, 1, ca, false)
	c.ClientOpts = []kgo.Opt{clientTLS(t, ca.File, "", "")}
	waitServing(c)
	if _, err := c.Admin().CreateTopic(ctxT(t), 1, 1, nil, "one"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	want := values(10, "s")
	produceValues(t, c.Client(), "one", want)
	checkRecords(t, consumeCluster(t, c, "one", len(want)), want)
	err := ping(t, c, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client trusting only the system CAs: %v, want a certificate error", err)
	}
}
