package broker_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

// freeLocalPort is a port nothing listens on now.
func freeLocalPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Three brokers with two listeners each: INTERNAL (SASL_PLAINTEXT, the
// inter-broker listener) and EXTERNAL (PLAINTEXT, advertised as
// localhost). Brokers replicate over INTERNAL, logged in; Metadata names
// every broker by the address of the listener the client asked on;
// EXTERNAL's unauthenticated clients are User:ANONYMOUS and get what ACLs
// grant that principal, nothing more.
func TestListeners(t *testing.T) {
	external := make([]int, 3)
	for i := range external {
		external[i] = freeLocalPort(t)
	}
	c := brokertest.Start(t, 3, func(i int, cfg *broker.Config) {
		cfg.SASLMechanisms = []string{"SCRAM-SHA-512"}
		cfg.BootstrapUser, cfg.BootstrapPassword = "admin", "admin-secret"
		cfg.Listeners = []broker.Listener{
			{Name: "INTERNAL", Protocol: broker.ProtocolSASLPlaintext, Addr: "127.0.0.1:0"},
			{Name: "EXTERNAL", Protocol: broker.ProtocolPlaintext, Addr: fmt.Sprintf("127.0.0.1:%d", external[i]),
				Advertised: fmt.Sprintf("localhost:%d", external[i])},
		}
		cfg.InterBrokerListener = "INTERNAL"
	})
	testutil.Eventually(t, "the bootstrap user", func() bool { return saslPing(t, c, saslAdmin()) == nil })
	c.ClientOpts = []kgo.Opt{kgo.SASL(saslAdmin())}
	waitServing(c)
	adm := c.Admin()
	for _, topic := range []string{"public", "private"} {
		if _, err := adm.CreateTopic(ctxT(t), 1, 3, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	waitServing(c)
	want := values(20, "p")
	produceValues(t, c.Client(), "public", want)
	produceValues(t, c.Client(), "private", want)
	sameLogs(t, c, "public", 0) // replicated over INTERNAL with SASL

	metadataBrokers := func(cl *kgo.Client) map[int32]string {
		t.Helper()
		resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctxT(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]string{}
		for _, b := range resp.Brokers {
			out[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
		return out
	}
	internal := metadataBrokers(c.Client())
	for i, b := range c.Brokers {
		id := broker.KafkaNodeID(c.Configs[i].NodeID)
		if got, want := internal[id], b.ListenerAddr("INTERNAL").String(); got != want {
			t.Errorf("INTERNAL metadata names broker %d at %s, want %s", id, got, want)
		}
	}

	anon, err := kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", external[0])), kgo.RecordRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	ext := metadataBrokers(anon)
	for i := range c.Brokers {
		id := broker.KafkaNodeID(c.Configs[i].NodeID)
		if got, want := ext[id], fmt.Sprintf("localhost:%d", external[i]); got != want {
			t.Errorf("EXTERNAL metadata names broker %d at %s, want %s", id, got, want)
		}
	}
	if got := listedTopics(t, anon); len(got) != 0 {
		t.Errorf("an anonymous client sees %v without ACLs", got)
	}
	grant(t, c, kadm.NewACLs().Allow("User:ANONYMOUS").Topics("public").Operations(kadm.OpRead))
	testutil.Eventually(t, "the anonymous client reading public", func() bool { return fetchErr(t, c, anon, "public") == 0 })
	if code := fetchErr(t, c, anon, "private"); code != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("an anonymous client fetching private: code %d", code)
	}
	if err := produceErr(t, anon, "public"); err == nil {
		t.Error("an anonymous client wrote to public with only READ")
	}
}

// A broker without the listener a client asks on is left out of Metadata,
// and partitions it leads get no leader and LISTENER_NOT_FOUND, as Kafka
// answers, instead of a leader the client cannot find.
func TestListenerMissingOnLeader(t *testing.T) {
	c := brokertest.Start(t, 2, func(i int, cfg *broker.Config) {
		cfg.Listeners = []broker.Listener{{Name: "INTERNAL", Protocol: broker.ProtocolPlaintext, Addr: "127.0.0.1:0"}}
		if i == 0 {
			cfg.Listeners = append(cfg.Listeners, broker.Listener{Name: "EXTERNAL", Protocol: broker.ProtocolPlaintext, Addr: "127.0.0.1:0"})
		}
	})
	waitServing(c)
	if _, err := c.Admin().CreateTopic(ctxT(t), 4, 1, nil, "spread"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	ext, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers[0].ListenerAddr("EXTERNAL").String()))
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("spread")
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxT(t), ext)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 1 {
		t.Fatalf("EXTERNAL metadata brokers %+v, want only broker 1", resp.Brokers)
	}
	var onTwo int
	for _, p := range resp.Topics[0].Partitions {
		leader, _ := c.PartitionInfo("spread", p.Partition)
		switch {
		case leader == 2 && (p.Leader != -1 || p.ErrorCode != kerr.ListenerNotFound.Code):
			t.Errorf("partition %d led by broker 2: leader %d code %d, want -1 and LISTENER_NOT_FOUND", p.Partition, p.Leader, p.ErrorCode)
		case leader == 2:
			onTwo++
		case p.Leader != leader || p.ErrorCode != 0:
			t.Errorf("partition %d led by broker %d: leader %d code %d", p.Partition, leader, p.Leader, p.ErrorCode)
		}
	}
	if onTwo == 0 {
		t.Fatal("no partition of four landed on broker 2; the test proves nothing")
	}
}
