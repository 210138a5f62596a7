package rest_test

import (
	"bytes"
	"context"
	"encoding/base64"
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
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/rest"
)

// cluster starts n brokers with HTTP listeners and an RF-n topic of three
// partitions.
func cluster(t *testing.T, n int) *brokertest.Cluster {
	t.Helper()
	c := brokertest.Start(t, n, func(_ int, cfg *broker.Config) { cfg.HTTPAddr = "127.0.0.1:0" })
	c.WaitBrokers(n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Admin().CreateTopic(ctx, 3, int16(n), nil, "orders"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "orders led everywhere", func() bool {
		for i := range c.Brokers {
			for p := int32(0); p < 3; p++ {
				if leader, _ := c.PartitionInfo("orders", p); leader < 0 || c.Index(leader) < 0 {
					return false
				}
			}
			if _, err := c.Brokers[i].Topic("orders"); err != nil {
				return false
			}
		}
		return true
	})
	return c
}

func url(c *brokertest.Cluster, i int, path string) string {
	return "http://" + c.Brokers[i].HTTPAddr().String() + path
}

// call sends a request and decodes the JSON answer into out (when set),
// returning the status and the raw body.
func call(t *testing.T, method, u, contentType string, body []byte, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != rest.ContentTypeV2 {
		t.Errorf("%s %s: content type %q, want %s", method, u, ct, rest.ContentTypeV2)
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, u, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

// wantError checks a REST Proxy error body.
func wantError(t *testing.T, status int, body string, wantStatus, wantCode int) {
	t.Helper()
	var e struct {
		Code int    `json:"error_code"`
		Msg  string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || status != wantStatus || e.Code != wantCode || e.Msg == "" {
		t.Errorf("status %d body %s: want %d with error_code %d and a message", status, body, wantStatus, wantCode)
	}
}

// Metadata endpoints on every node of a three-node cluster, and their
// errors.
func TestMetadataEndpoints(t *testing.T) {
	c := cluster(t, 3)
	for i := range c.Brokers {
		var brokers struct {
			Brokers []int32 `json:"brokers"`
		}
		if st, body := call(t, "GET", url(c, i, "/brokers"), "", nil, &brokers); st != 200 || !slices.Equal(brokers.Brokers, []int32{1, 2, 3}) {
			t.Errorf("node %d GET /brokers: %d %s", i, st, body)
		}
		var topics []string
		if st, body := call(t, "GET", url(c, i, "/topics"), "", nil, &topics); st != 200 || !slices.Contains(topics, "orders") || slices.Contains(topics, "__consumer_offsets") {
			t.Errorf("node %d GET /topics: %d %s", i, st, body)
		}
	}
	var topic struct {
		Name       string            `json:"name"`
		Configs    map[string]string `json:"configs"`
		Partitions []struct {
			Partition int32 `json:"partition"`
			Leader    int32 `json:"leader"`
			Replicas  []struct {
				Broker int32 `json:"broker"`
				Leader bool  `json:"leader"`
				InSync bool  `json:"in_sync"`
			} `json:"replicas"`
		} `json:"partitions"`
	}
	if st, body := call(t, "GET", url(c, 0, "/topics/orders"), "", nil, &topic); st != 200 || topic.Name != "orders" || len(topic.Partitions) != 3 {
		t.Fatalf("GET /topics/orders: %d %s", st, body)
	}
	for _, p := range topic.Partitions {
		leader, _ := c.PartitionInfo("orders", p.Partition)
		leaders := 0
		for _, r := range p.Replicas {
			if r.Leader {
				leaders++
				if r.Broker != leader {
					t.Errorf("partition %d: replica %d marked leader, the leader is %d", p.Partition, r.Broker, leader)
				}
			}
		}
		if p.Leader != leader || len(p.Replicas) != 3 || leaders != 1 {
			t.Errorf("partition %+v, leader %d", p, leader)
		}
	}
	if topic.Configs["cleanup.policy"] != "delete" {
		t.Errorf("configs %v lack cleanup.policy=delete", topic.Configs)
	}
	var parts []map[string]any
	if st, body := call(t, "GET", url(c, 1, "/topics/orders/partitions"), "", nil, &parts); st != 200 || len(parts) != 3 {
		t.Errorf("GET partitions: %d %s", st, body)
	}
	if st, body := call(t, "GET", url(c, 2, "/topics/orders/partitions/2"), "", nil, nil); st != 200 || !strings.Contains(body, `"partition":2`) {
		t.Errorf("GET partition 2: %d %s", st, body)
	}
	st, body := call(t, "GET", url(c, 0, "/topics/nope"), "", nil, nil)
	wantError(t, st, body, 404, 40401)
	st, body = call(t, "GET", url(c, 0, "/topics/orders/partitions/7"), "", nil, nil)
	wantError(t, st, body, 404, 40402)
}

type produced struct {
	Offsets []struct {
		Partition int32   `json:"partition"`
		Offset    int64   `json:"offset"`
		ErrorCode *int    `json:"error_code"`
		Error     *string `json:"error"`
	} `json:"offsets"`
}

// Records produced over HTTP, JSON and binary, through every node (two of
// the three lead no given partition: the node's client sends each record
// to its leader), are read back by a Kafka consumer with the keys and
// values the requests carried; bad requests get REST Proxy's errors.
func TestProduce(t *testing.T) {
	c := cluster(t, 3)
	for i := range c.Brokers {
		body := fmt.Sprintf(`{"records":[{"key":{"node":%d},"value":{"n":%d,"s":"json"},"partition":%d}]}`, i, i, i)
		var out produced
		st, raw := call(t, "POST", url(c, i, "/topics/orders"), rest.ContentTypeJSON, []byte(body), &out)
		if st != 200 || len(out.Offsets) != 1 || out.Offsets[0].Partition != int32(i) || out.Offsets[0].ErrorCode != nil {
			t.Fatalf("node %d JSON produce: %d %s", i, st, raw)
		}
	}
	bin := fmt.Sprintf(`{"records":[{"key":%q,"value":%q},{"value":%q}]}`,
		base64.StdEncoding.EncodeToString([]byte("k-bin")), base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255}),
		base64.StdEncoding.EncodeToString([]byte("no key")))
	var out produced
	if st, raw := call(t, "POST", url(c, 1, "/topics/orders/partitions/2"), rest.ContentTypeBinary, []byte(bin), &out); st != 200 || len(out.Offsets) != 2 ||
		out.Offsets[0].Partition != 2 || out.Offsets[1].Partition != 2 || out.Offsets[1].Offset != out.Offsets[0].Offset+1 {
		t.Fatalf("binary produce to partition 2: %d %s", st, raw)
	}

	cl := c.Client(kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(got) < 5 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got[string(r.Key)+"@"+fmt.Sprint(r.Partition)] = string(r.Value) })
	}
	want := map[string]string{
		`{"node":0}@0`: `{"n":0,"s":"json"}`, `{"node":1}@1`: `{"n":1,"s":"json"}`, `{"node":2}@2`: `{"n":2,"s":"json"}`,
		"k-bin@2": "\x00\x01\x02\xff", "@2": "no key",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("record %s: value %q, want %q (all: %q)", k, got[k], v, got)
		}
	}

	for _, tc := range []struct {
		name, path, ct, body string
		status, code         int
	}{
		{"unsupported content type", "/topics/orders", "text/plain", `{"records":[{"value":1}]}`, 415, 415},
		{"not JSON", "/topics/orders", rest.ContentTypeJSON, `{"records":`, 422, 42201},
		{"no records", "/topics/orders", rest.ContentTypeJSON, `{"records":[]}`, 422, 42202},
		{"bad base64", "/topics/orders", rest.ContentTypeBinary, `{"records":[{"value":"%%%"}]}`, 422, 42201},
		{"unknown topic", "/topics/nope", rest.ContentTypeJSON, `{"records":[{"value":1}]}`, 404, 40401},
		{"unknown partition", "/topics/orders/partitions/9", rest.ContentTypeJSON, `{"records":[{"value":1}]}`, 404, 40402},
		{"partition in a record", "/topics/orders", rest.ContentTypeJSON, `{"records":[{"value":1,"partition":5}]}`, 404, 40402},
		{"too large", "/topics/orders", rest.ContentTypeJSON, `{"records":[{"value":"` + strings.Repeat("x", 9<<20) + `"}]}`, 413, 413},
	} {
		st, raw := call(t, "POST", url(c, 0, tc.path), tc.ct, []byte(tc.body), nil)
		t.Run(tc.name, func(t *testing.T) { wantError(t, st, raw, tc.status, tc.code) })
	}
}

// Under SASL every request needs basic credentials of a SCRAM user, and
// the user's ACLs apply: no credentials or a wrong password get 401, a
// user without an ACL for the topic 403, the super user writes.
func TestBasicAuthUnderSASL(t *testing.T) {
	c := brokertest.Start(t, 1, func(_ int, cfg *broker.Config) {
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.SASLMechanisms = []string{"SCRAM-SHA-512"}
		cfg.BootstrapUser, cfg.BootstrapPassword = "admin", "admin-secret"
	})
	admin := scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()
	c.ClientOpts = []kgo.Opt{kgo.SASL(admin)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	testutil.Eventually(t, "the bootstrap user", func() bool { return c.Client().Ping(ctx) == nil })
	adm := c.Admin()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "alice-pw"}}); err != nil {
		t.Fatal(err)
	}
	as := func(user, pass, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url(c, 0, path), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		req.Header.Set("Content-Type", rest.ContentTypeJSON)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	st, body := as("", "", "GET", "/topics", "")
	wantError(t, st, body, 401, 40101)
	st, body = as("admin", "wrong", "GET", "/topics", "")
	wantError(t, st, body, 401, 40101)
	if st, body := as("admin", "admin-secret", "POST", "/topics/secret", `{"records":[{"value":"x"}]}`); st != 200 || strings.Contains(body, "error_code\":4") {
		t.Errorf("the super user producing: %d %s", st, body)
	}
	testutil.Eventually(t, "alice's credential", func() bool {
		st, _ := as("alice", "alice-pw", "GET", "/topics", "")
		return st == 200
	})
	st, body = as("alice", "alice-pw", "POST", "/topics/secret", `{"records":[{"value":"x"}]}`)
	wantError(t, st, body, 403, 40301)
}

// A consumer instance over HTTP is a member of its group: it reads what
// was produced (JSON), commits, and a franz-go member of the same group
// resumes after the commit; the group's offsets are the same seen by
// kadm. Made on one node, it is used through the others (forwarded).
// Deleting the instance leaves the group.
func TestConsumerInstance(t *testing.T) {
	c := cluster(t, 3)
	for i := range 6 {
		body := fmt.Sprintf(`{"records":[{"value":{"i":%d},"partition":0}]}`, i)
		if st, raw := call(t, "POST", url(c, 0, "/topics/orders"), rest.ContentTypeJSON, []byte(body), nil); st != 200 {
			t.Fatalf("produce: %d %s", st, raw)
		}
	}
	var created struct {
		ID      string `json:"instance_id"`
		BaseURI string `json:"base_uri"`
	}
	st, raw := call(t, "POST", url(c, 1, "/consumers/web"), rest.ContentTypeV2, []byte(`{"name":"w1","format":"json","auto.offset.reset":"earliest"}`), &created)
	if st != 200 || created.ID != "w1" || !strings.HasSuffix(created.BaseURI, "/consumers/web/instances/w1") {
		t.Fatalf("create instance: %d %s", st, raw)
	}
	st, raw = call(t, "POST", url(c, 1, "/consumers/web"), rest.ContentTypeV2, []byte(`{"name":"w1","format":"json"}`), nil)
	wantError(t, st, raw, 409, 40902)
	st, raw = call(t, "POST", url(c, 1, "/consumers/web"), rest.ContentTypeV2, []byte(`{"name":"w2","format":"avro"}`), nil)
	wantError(t, st, raw, 422, 42204)
	st, raw = call(t, "GET", url(c, 1, "/consumers/web/instances/w1/records"), "", nil, nil)
	wantError(t, st, raw, 409, 40903) // no subscription yet
	base := "/consumers/web/instances/w1"
	// Made on node 1, the instance is used through every node.
	req, _ := http.NewRequest("POST", url(c, 2, base+"/subscription"), strings.NewReader(`{"topics":["orders"]}`))
	req.Header.Set("Content-Type", rest.ContentTypeV2)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("subscribe: %v %v", resp, err)
	}
	var got []int
	testutil.Eventually(t, "three records over HTTP", func() bool {
		req, _ := http.NewRequest("GET", url(c, 0, base+"/records?timeout=500&max_bytes=18"), nil)
		req.Header.Set("Accept", rest.ContentTypeJSON)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var recs []struct {
			Value     struct{ I int } `json:"value"`
			Partition int32           `json:"partition"`
			Offset    int64           `json:"offset"`
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != rest.ContentTypeJSON {
			t.Fatalf("records: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Offset != int64(r.Value.I) {
				t.Fatalf("record %+v: value and offset disagree", r)
			}
			got = append(got, r.Value.I)
		}
		return len(got) >= 3
	})
	if !slices.Equal(got[:3], []int{0, 1, 2}) {
		t.Fatalf("first records %v, want 0 1 2 in order", got)
	}
	// Commit the third (offset 2): the group resumes at 3.
	if st, raw := call(t, "POST", url(c, 2, base+"/offsets"), rest.ContentTypeV2, []byte(`{"offsets":[{"topic":"orders","partition":0,"offset":2}]}`), nil); st != 200 {
		t.Fatalf("commit: %d %s", st, raw)
	}
	var committed struct {
		Offsets []struct {
			Offset int64 `json:"offset"`
		} `json:"offsets"`
	}
	req, _ = http.NewRequest("GET", url(c, 0, base+"/offsets"), strings.NewReader(`{"partitions":[{"topic":"orders","partition":0}]}`))
	req.Header.Set("Content-Type", rest.ContentTypeV2)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&committed)
	resp.Body.Close()
	if len(committed.Offsets) != 1 || committed.Offsets[0].Offset != 3 {
		t.Fatalf("committed offsets over HTTP: %+v, want 3", committed)
	}
	st, raw = call(t, "POST", url(c, 0, "/consumers/web"), rest.ContentTypeV2, []byte(`{"name":"w1","format":"json"}`), nil)
	wantError(t, st, raw, 409, 40902) // node 1 holds that name
	req, _ = http.NewRequest("DELETE", url(c, 2, base), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete instance: %v %v", resp, err)
	}
	for i := range c.Brokers {
		st, raw = call(t, "GET", url(c, i, base+"/records"), "", nil, nil)
		wantError(t, st, raw, 404, 40403)
	}

	// A franz-go member of the group starts where the HTTP one committed.
	cl := c.Client(kgo.ConsumerGroup("web"), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var first *kgo.Record
	for first == nil && ctx.Err() == nil {
		if rs := cl.PollFetches(ctx).Records(); len(rs) > 0 {
			first = rs[0]
		}
	}
	if first == nil || first.Partition != 0 || first.Offset != 3 {
		t.Fatalf("the Kafka member of the group started at %+v, want partition 0 offset 3", first)
	}
}

// mlog's /v1 additions: topics created and deleted over HTTP, groups with
// their lag per partition, and an OpenAPI document naming every endpoint.
func TestV1(t *testing.T) {
	c := cluster(t, 3)
	st, raw := call(t, "POST", url(c, 0, "/v1/topics"), rest.ContentTypeV2, []byte(`{"name":"made","partitions":2,"replication_factor":3,"configs":{"retention.ms":"60000"}}`), nil)
	if st != 201 || !strings.Contains(raw, `"partitions":2`) {
		t.Fatalf("create topic: %d %s", st, raw)
	}
	st, raw = call(t, "POST", url(c, 1, "/v1/topics"), rest.ContentTypeV2, []byte(`{"name":"made"}`), nil)
	wantError(t, st, raw, 409, 40901)
	st, raw = call(t, "POST", url(c, 1, "/v1/topics"), rest.ContentTypeV2, []byte(`{"name":"bad name!"}`), nil)
	wantError(t, st, raw, 422, 42205)
	var topic struct {
		Configs map[string]string `json:"configs"`
	}
	// Every broker learns the topic from the metadata, node 2 and the one
	// its configs are asked of.
	testutil.Eventually(t, "the new topic and its configs on node 2", func() bool {
		st, _ := call(t, "GET", url(c, 2, "/topics/made"), "", nil, &topic)
		return st == 200 && topic.Configs["retention.ms"] == "60000"
	})
	req, _ := http.NewRequest("DELETE", url(c, 2, "/v1/topics/made"), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete topic: %v %v", resp, err)
	}
	req, _ = http.NewRequest("DELETE", url(c, 2, "/v1/topics/never"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, resp.StatusCode, string(raw2), 404, 40401)

	// A group with a commit at 2 of five records: lag 3 on that partition.
	for i := range 5 {
		if st, raw := call(t, "POST", url(c, 0, "/topics/orders/partitions/1"), rest.ContentTypeJSON, []byte(fmt.Sprintf(`{"records":[{"value":%d}]}`, i)), nil); st != 200 {
			t.Fatalf("produce: %d %s", st, raw)
		}
	}
	offsets := kadm.Offsets{}
	offsets.AddOffset("orders", 1, 2, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	testutil.Eventually(t, "a commit", func() bool {
		res, err := c.Admin().CommitOffsets(ctx, "lagging", offsets)
		return err == nil && res.Ok()
	})
	var groups []struct {
		Group string `json:"group"`
	}
	if st, raw := call(t, "GET", url(c, 1, "/v1/groups"), "", nil, &groups); st != 200 || !slices.ContainsFunc(groups, func(g struct {
		Group string `json:"group"`
	}) bool {
		return g.Group == "lagging"
	}) {
		t.Errorf("GET /v1/groups: %d %s", st, raw)
	}
	var g struct {
		Group string `json:"group"`
		Lag   []struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Committed int64  `json:"committed"`
			End       int64  `json:"end"`
			Lag       int64  `json:"lag"`
		} `json:"lag"`
	}
	if st, raw := call(t, "GET", url(c, 2, "/v1/groups/lagging"), "", nil, &g); st != 200 {
		t.Fatalf("GET group: %d %s", st, raw)
	}
	found := false
	for _, l := range g.Lag {
		if l.Topic == "orders" && l.Partition == 1 {
			found = true
			if l.Committed != 2 || l.End != 5 || l.Lag != 3 {
				t.Errorf("lag of orders-1: %+v, want committed 2, end 5, lag 3", l)
			}
		}
	}
	if !found {
		t.Errorf("group lag lacks orders-1: %+v", g)
	}
	st, raw = call(t, "GET", url(c, 2, "/v1/groups/nobody"), "", nil, nil)
	wantError(t, st, raw, 404, 40404)

	resp, err = http.Get(url(c, 0, "/v1/openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	for _, ep := range []string{"get /brokers", "get /topics", "get /topics/{topic}", "post /topics/{topic}", "get /topics/{topic}/partitions",
		"get /topics/{topic}/partitions/{partition}", "post /topics/{topic}/partitions/{partition}", "post /consumers/{group}",
		"delete /consumers/{group}/instances/{name}", "post /consumers/{group}/instances/{name}/subscription",
		"get /consumers/{group}/instances/{name}/subscription", "delete /consumers/{group}/instances/{name}/subscription",
		"get /consumers/{group}/instances/{name}/records", "post /consumers/{group}/instances/{name}/offsets",
		"get /consumers/{group}/instances/{name}/offsets", "post /v1/topics", "delete /v1/topics/{topic}", "get /v1/groups",
		"get /v1/groups/{group}", "get /v1/openapi.json"} {
		method, path, _ := strings.Cut(ep, " ")
		if doc.Paths[path][method] == nil {
			t.Errorf("the OpenAPI document lacks %s", ep)
		}
	}
}
