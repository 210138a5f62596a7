package broker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

// secured is a SASL cluster with the ACL authorizer on, the admin (the
// bootstrap user) as c.ClientOpts, and users added by addUser.
func secured(t *testing.T, n int) *brokertest.Cluster {
	t.Helper()
	c := saslCluster(t, n)
	admin := saslAdmin()
	testutil.Eventually(t, "the bootstrap user", func() bool { return saslPing(t, c, admin) == nil })
	c.ClientOpts = []kgo.Opt{kgo.SASL(admin)}
	waitServing(c)
	return c
}

// saslAdmin logs in as the bootstrap user of saslCluster.
func saslAdmin() sasl.Mechanism {
	return scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()
}

// addUser gives name a SCRAM-SHA-512 credential (password name+"-pw")
// and waits until every running broker's metadata has it.
func addUser(t *testing.T, c *brokertest.Cluster, name string) {
	t.Helper()
	res, err := c.Admin().AlterUserSCRAMs(ctxT(t), nil, []kadm.UpsertSCRAM{{User: name, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: name + "-pw"}})
	if err != nil || res[name].Err != nil {
		t.Fatalf("adding %s: %+v %v", name, res, err)
	}
	testutil.Eventually(t, name+"'s credential on every broker", func() bool {
		for _, b := range c.Brokers {
			if b == nil {
				continue
			}
			if _, ok := b.ScramCredential(name, 2); !ok {
				return false
			}
		}
		return true
	})
}

// userClient is a client logged in as name, without retries on
// authorization errors' sake (they are not retried anyway).
func userClient(t *testing.T, c *brokertest.Cluster, name string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(c.Seeds()...), kgo.SASL(scram.Auth{User: name, Pass: name + "-pw"}.AsSha512Mechanism()),
		kgo.RecordRetries(2), kgo.RetryTimeout(2e9)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// grant creates ACLs and waits until every running broker applied them.
func grant(t *testing.T, c *brokertest.Cluster, b *kadm.ACLBuilder) {
	t.Helper()
	before := 0
	for _, br := range c.Brokers {
		if br != nil {
			before = max(before, len(br.ACLBindings()))
		}
	}
	res, err := c.Admin().CreateACLs(ctxT(t), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("creating %+v: %v %s", r, r.Err, r.ErrMessage)
		}
	}
	testutil.Eventually(t, "the ACLs on every broker", func() bool {
		for _, br := range c.Brokers {
			if br != nil && len(br.ACLBindings()) < before+len(res) {
				return false
			}
		}
		return true
	})
}

func produceErr(t *testing.T, cl *kgo.Client, topic string) error {
	t.Helper()
	return cl.ProduceSync(ctxT(t), &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
}

// fetchErr is the error code a consumer's fetch of topic's partition 0
// gets from its leader.
func fetchErr(t *testing.T, c *brokertest.Cluster, cl *kgo.Client, topic string) int16 {
	t.Helper()
	leader, _ := c.PartitionInfo(topic, 0)
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxBytes = 11, -1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxT(t), cl.Broker(int(leader)))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func listedTopics(t *testing.T, cl *kgo.Client) []string {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tp := range resp.Topics {
		if !tp.IsInternal {
			out = append(out, *tp.Topic)
		}
	}
	slices.Sort(out)
	return out
}

// A user without ACLs can neither read nor write nor see a topic; a
// prefixed ACL grants exactly its prefix; a DENY beats an ALLOW; groups
// need their own ACL; only a principal with ALTER on the cluster changes
// ACLs; deleting an ACL takes its access away. The ACL requests go to a
// broker that is not the controller too (forwarded).
func TestACLsEnforced(t *testing.T) {
	c := secured(t, 3)
	adm := c.Admin()
	for _, topic := range []string{"orders-eu", "orders", "other"} {
		if _, err := adm.CreateTopic(ctxT(t), 1, 3, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	waitServing(c)
	addUser(t, c, "alice")
	alice := userClient(t, c, "alice")

	// No ACL: nothing.
	if err := produceErr(t, alice, "orders-eu"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("alice producing without ACLs: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if code := fetchErr(t, c, alice, "orders-eu"); code != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("alice fetching without ACLs: code %d, want TOPIC_AUTHORIZATION_FAILED", code)
	}
	if got := listedTopics(t, alice); len(got) != 0 {
		t.Errorf("alice's metadata lists %v without ACLs", got)
	}
	if err := produceErr(t, userClient(t, c, "alice", kgo.AllowAutoTopicCreation()), "brand-new"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("alice auto-creating a topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	// A prefixed ACL for "orders-": that prefix and nothing else.
	grant(t, c, kadm.NewACLs().Allow("User:alice").Topics("orders-").ResourcePatternType(kadm.ACLPatternPrefixed).
		Operations(kadm.OpWrite, kadm.OpRead))
	testutil.Eventually(t, "alice producing to orders-eu", func() bool { return produceErr(t, alice, "orders-eu") == nil })
	if code := fetchErr(t, c, alice, "orders-eu"); code != 0 {
		t.Errorf("alice fetching orders-eu with a prefixed READ: code %d", code)
	}
	for _, topic := range []string{"orders", "other"} {
		if err := produceErr(t, alice, topic); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("alice producing to %s (outside the prefix): %v", topic, err)
		}
	}
	if got := listedTopics(t, alice); !slices.Equal(got, []string{"orders-eu"}) {
		t.Errorf("alice's metadata lists %v, want [orders-eu]", got)
	}
	// Auto-creating orders-us (which she may describe and write) needs
	// CREATE too.
	creator := userClient(t, c, "alice", kgo.AllowAutoTopicCreation())
	if err := produceErr(t, creator, "orders-us"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("alice auto-creating orders-us without CREATE: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	grant(t, c, kadm.NewACLs().Allow("User:alice").Topics("orders-").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpCreate))
	testutil.Eventually(t, "alice auto-creating orders-us with CREATE", func() bool { return produceErr(t, creator, "orders-us") == nil })

	// Deny beats allow: READ on every topic, denied on orders-eu.
	grant(t, c, kadm.NewACLs().Allow("User:alice").Topics("*").Operations(kadm.OpRead))
	grant(t, c, kadm.NewACLs().Deny("User:alice").Topics("orders-eu").Operations(kadm.OpRead))
	testutil.Eventually(t, "the deny to apply", func() bool {
		return fetchErr(t, c, alice, "orders-eu") == kerr.TopicAuthorizationFailed.Code
	})
	// Every broker applies the grant soon after the controller.
	testutil.Eventually(t, "alice reading other with READ on *", func() bool { return fetchErr(t, c, alice, "other") == 0 })
	if err := produceErr(t, alice, "orders-eu"); err != nil {
		t.Errorf("alice writing orders-eu (only READ is denied): %v", err)
	}

	// Groups need their own ACL.
	groupCl := userClient(t, c, "alice", kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("other"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := groupCl.PollFetches(ctxT(t))
	if err := fs.Err0(); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Errorf("alice joining g1 without a group ACL: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	groupCl.Close()
	grant(t, c, kadm.NewACLs().Allow("User:alice").Groups("g1").Operations(kadm.OpRead))
	produceValues(t, c.Client(), "other", values(3, "o"))
	groupCl = userClient(t, c, "alice", kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("other"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got int
	for got < 3 {
		fs := groupCl.PollFetches(ctxT(t))
		if err := fs.Err0(); err != nil {
			t.Fatalf("alice consuming in g1 with its ACL: %v", err)
		}
		got += len(fs.Records())
	}
	if err := groupCl.CommitUncommittedOffsets(ctxT(t)); err != nil {
		t.Errorf("alice committing in g1: %v", err)
	}

	// alice may not change ACLs or credentials.
	aliceAdm := kadm.NewClient(alice)
	res, err := aliceAdm.CreateACLs(ctxT(t), kadm.NewACLs().Allow("User:alice").Clusters().Operations(kadm.OpAll))
	if err == nil && (len(res) == 0 || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed)) {
		t.Errorf("alice granting herself the cluster: %+v", res)
	}
	d, err := aliceAdm.DescribeACLs(ctxT(t), kadm.NewACLs().AnyResource().Allow().AllowHosts().Deny().DenyHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny))
	if err != nil || len(d) == 0 || !errors.Is(d[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("alice describing ACLs: %+v %v, want CLUSTER_AUTHORIZATION_FAILED", d, err)
	}

	// Describe through every broker (one is the controller), then delete
	// the prefixed ACLs through one that is not: alice loses orders-eu.
	filter := kadm.NewACLs().Allow("User:alice").Topics("orders-").ResourcePatternType(kadm.ACLPatternPrefixed).
		AllowHosts().Operations(kadm.OpAny)
	adminCl := c.Client()
	nonController := int32(-1)
	for i, b := range c.Brokers {
		id := broker.KafkaNodeID(c.Configs[i].NodeID)
		if !broker.IsController(b) {
			nonController = id
		}
		req := kmsg.NewPtrDescribeACLsRequest()
		req.ResourceType, req.ResourceName, req.ResourcePatternType = kmsg.ACLResourceTypeTopic, kmsg.StringPtr("orders-"), kmsg.ACLResourcePatternTypePrefixed
		req.Principal, req.Operation, req.PermissionType = kmsg.StringPtr("User:alice"), kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		// Every broker applies metadata changes soon after the controller.
		testutil.Eventually(t, fmt.Sprintf("broker %d describing alice's three prefixed ACLs", id), func() bool {
			resp, err := req.RequestWith(ctxT(t), adminCl.Broker(int(id)))
			return err == nil && resp.ErrorCode == 0 && len(resp.Resources) == 1 && len(resp.Resources[0].ACLs) == 3
		})
	}
	dreq := kmsg.NewPtrDeleteACLsRequest()
	df := kmsg.NewDeleteACLsRequestFilter()
	df.ResourceType, df.ResourceName, df.ResourcePatternType = kmsg.ACLResourceTypeTopic, kmsg.StringPtr("orders-"), kmsg.ACLResourcePatternTypePrefixed
	df.Principal, df.Operation, df.PermissionType = kmsg.StringPtr("User:alice"), kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAllow
	dreq.Filters = append(dreq.Filters, df)
	dresp, err := dreq.RequestWith(ctxT(t), adminCl.Broker(int(nonController)))
	if err != nil || len(dresp.Results) != 1 || dresp.Results[0].ErrorCode != 0 || len(dresp.Results[0].MatchingACLs) != 3 {
		t.Fatalf("deleting alice's prefixed ACLs through broker %d: %+v %v", nonController, dresp, err)
	}
	// Every broker applies the metadata change soon after the controller.
	testutil.Eventually(t, "the deleted ACLs gone from describe", func() bool {
		d, err := kadm.NewClient(adminCl).DescribeACLs(ctxT(t), filter)
		return err == nil && len(d) == 1 && len(d[0].Described) == 0
	})
	testutil.Eventually(t, "alice to lose orders-eu", func() bool {
		return errors.Is(produceErr(t, alice, "orders-eu"), kerr.TopicAuthorizationFailed)
	})
}

// A client that poses as a follower is refused without CLUSTER_ACTION even
// with the broker's own client id and every topic ACL; so are the other
// broker-only APIs. The brokers themselves (logged in as the bootstrap
// user) replicate.
func TestReplicaPoserRefused(t *testing.T) {
	c := secured(t, 3)
	adm := c.Admin()
	if _, err := adm.CreateTopic(ctxT(t), 1, 3, nil, "t"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	produceValues(t, c.Client(), "t", values(10, "v"))
	sameLogs(t, c, "t", 0)
	addUser(t, c, "mallory")
	grant(t, c, kadm.NewACLs().Allow("User:mallory").Topics("*").Operations(kadm.OpAll))

	leader, _ := c.PartitionInfo("t", 0)
	fi := (c.Index(leader) + 1) % 3
	follower := c.Brokers[fi]
	cl := userClient(t, c, "mallory", kgo.ClientID(broker.ReplicaClientID(follower)))
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxBytes = 12, broker.KafkaNodeID(c.Configs[fi].NodeID), 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LastFetchedEpoch, rp.FetchOffset = 1<<20, -1, -1, 1000
	rt.Partitions = append(rt.Partitions, rp)
	missing := rt
	missing.Topic = "no-such-topic"
	req.Topics = append(req.Topics, rt, missing)
	resp, err := req.RequestWith(ctxT(t), cl.Broker(int(leader)))
	if err != nil {
		t.Fatal(err)
	}
	// The same answer for a topic that does not exist: nothing leaks.
	for _, topic := range resp.Topics {
		if code := topic.Partitions[0].ErrorCode; code != kerr.ClusterAuthorizationFailed.Code {
			t.Errorf("mallory's replica fetch of %s: code %d, want CLUSTER_AUTHORIZATION_FAILED", topic.Topic, code)
		}
	}
	if len(resp.Topics[0].Partitions[0].RecordBatches) != 0 {
		t.Error("mallory's replica fetch got records")
	}

	lb := cl.Broker(int(leader))
	alter := kmsg.NewPtrAlterPartitionRequest()
	alter.BrokerID = leader
	if r, err := alter.RequestWith(ctxT(t), lb); err != nil || r.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("mallory's AlterPartition: %+v %v", r, err)
	}
	shutdown := kmsg.NewPtrControlledShutdownRequest()
	shutdown.BrokerID = leader
	if r, err := shutdown.RequestWith(ctxT(t), lb); err != nil || r.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("mallory's ControlledShutdown: %+v %v", r, err)
	}
	alloc := kmsg.NewPtrAllocateProducerIDsRequest()
	alloc.BrokerID = leader
	if r, err := alloc.RequestWith(ctxT(t), lb); err != nil || r.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("mallory's AllocateProducerIDs: %+v %v", r, err)
	}
	// Replication still runs (the brokers hold CLUSTER_ACTION as super
	// users): new records reach every replica.
	produceValues(t, c.Client(), "t", values(10, "w"))
	sameLogs(t, c, "t", 0)
}

// Users and ACLs live in the Raft metadata: they survive the controller's
// death (a new controller serves them) and a restart of every broker.
func TestSecuritySurvivesRestartAndControllerChange(t *testing.T) {
	c := secured(t, 3)
	adm := c.Admin()
	if _, err := adm.CreateTopic(ctxT(t), 1, 3, nil, "kept"); err != nil {
		t.Fatal(err)
	}
	addUser(t, c, "carol")
	grant(t, c, kadm.NewACLs().Allow("User:carol").Topics("kept").Operations(kadm.OpWrite))
	waitServing(c)
	carolWrites := func() error {
		cl := userClient(t, c, "carol")
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5e9)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: "kept", Value: []byte("c")}).FirstErr()
	}
	testutil.Eventually(t, "carol writing", func() bool { return carolWrites() == nil })

	ctrl := -1
	for i, b := range c.Brokers {
		if broker.IsController(b) {
			ctrl = i
		}
	}
	c.Kill(ctrl)
	c.WaitBrokers(2)
	testutil.Eventually(t, "carol writing after the controller died", func() bool { return carolWrites() == nil })
	c.StartNode(ctrl)
	waitServing(c)

	for i := range c.Brokers {
		c.Stop(i)
	}
	for i := range c.Brokers {
		c.StartNode(i)
	}
	waitServing(c)
	testutil.Eventually(t, "carol writing after a full restart", func() bool { return carolWrites() == nil })
	// and still nothing more than her ACL
	cl := userClient(t, c, "carol")
	if code := fetchErr(t, c, cl, "kept"); code != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("carol reading kept with only WRITE: code %d", code)
	}
}
