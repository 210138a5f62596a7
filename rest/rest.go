package rest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/acl"
)

// Content types of REST Proxy v2.
const (
	ContentTypeV2     = "application/vnd.kafka.v2+json"
	ContentTypeJSON   = "application/vnd.kafka.json.v2+json"
	ContentTypeBinary = "application/vnd.kafka.binary.v2+json"
)

// Config says how the proxy reaches the cluster.
type Config struct {
	// Seeds returns the node's own Kafka listener address(es); called on
	// first use, once the listener is up.
	Seeds func() []string
	// ClientOpts are extra options of every Kafka client (TLS to the
	// listener).
	ClientOpts []kgo.Opt
	// SASL requires HTTP basic credentials, used to log in to Kafka with
	// SCRAM-SHA-512 as that user (or, with Authorize, a client
	// certificate).
	SASL bool
	// Authorize, when set, is the ACL decision for requests the proxy
	// cannot log in to Kafka as (a client certificate's principal, else
	// User:ANONYMOUS): those are served with BrokerSeeds and BrokerOpts,
	// the broker's own identity, and the proxy checks each operation.
	Authorize func(principal, host string, op acl.Operation, rt acl.ResourceType, name string) bool
	// RequireAuth refuses (401) requests that name no one when the Kafka
	// listener authenticates every client: they are not User:ANONYMOUS.
	RequireAuth bool
	BrokerSeeds func() []string
	BrokerOpts  []kgo.Opt
	// Trusted reports whether a certificate's principal may forward
	// requests for another (HeaderPrincipal): the brokers'.
	Trusted func(principal string) bool
	// NodeID is this node's broker id; Peers returns the other live
	// nodes' HTTP base URLs ("https://10.0.0.2:9644"), where a consumer
	// instance this node does not hold is looked for; PeerTLS is how this
	// node reaches https ones (presenting its own certificate).
	NodeID  int32
	Peers   func() []string
	PeerTLS *tls.Config
	// MaxBodyBytes bounds a request body (413 past it).
	MaxBodyBytes int64
	// Timeout bounds one request's work against the cluster.
	Timeout time.Duration
	// InstanceTimeout closes a consumer instance idle this long
	// (consumer.instance.timeout.ms).
	InstanceTimeout time.Duration
	Logger          *slog.Logger
}

// DefaultConfig returns the defaults: 8 MiB bodies, 30 s per request.
func DefaultConfig() Config {
	return Config{MaxBodyBytes: 8 << 20, Timeout: 30 * time.Second, InstanceTimeout: 5 * time.Minute}
}

// Proxy serves the REST API.
type Proxy struct {
	cfg Config
	mux *http.ServeMux

	mu        sync.Mutex
	clients   map[string]*kgo.Client // by identity.key
	instances map[string]*instance   // consumer instances by group/name
	peers     *http.Client
	closed    bool
	stop      chan struct{}
	wg        sync.WaitGroup
}

// New makes a proxy; Close releases its Kafka clients.
func New(cfg Config) (*Proxy, error) {
	if cfg.Seeds == nil || (cfg.Authorize != nil && cfg.BrokerSeeds == nil) {
		return nil, errors.New("rest: Seeds, and BrokerSeeds with Authorize, are required")
	}
	if cfg.MaxBodyBytes <= 0 || cfg.Timeout <= 0 || cfg.InstanceTimeout <= 0 {
		return nil, fmt.Errorf("rest: max body %d, timeout %v, instance timeout %v", cfg.MaxBodyBytes, cfg.Timeout, cfg.InstanceTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Proxy{cfg: cfg, mux: http.NewServeMux(), clients: map[string]*kgo.Client{}, instances: map[string]*instance{},
		stop: make(chan struct{})}
	p.peers = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.PeerTLS, MaxIdleConnsPerHost: 8,
		DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext, TLSHandshakeTimeout: 5 * time.Second}}
	p.mux.HandleFunc("GET /topics", p.listTopics)
	p.mux.HandleFunc("GET /topics/{topic}", p.getTopic)
	p.mux.HandleFunc("GET /topics/{topic}/partitions", p.getPartitions)
	p.mux.HandleFunc("GET /topics/{topic}/partitions/{partition}", p.getPartition)
	p.mux.HandleFunc("POST /topics/{topic}", p.produce)
	p.mux.HandleFunc("POST /topics/{topic}/partitions/{partition}", p.produce)
	p.mux.HandleFunc("GET /brokers", p.listBrokers)
	p.consumerRoutes()
	p.v1Routes()
	p.consoleRoutes()
	p.wg.Add(1)
	go p.expireLoop()
	return p, nil
}

// Patterns are the paths the proxy serves, for the HTTP listener's mux.
func Patterns() []string {
	return []string{"/topics", "/topics/", "/brokers", "/consumers/", "/v1/", "/console/", "/{$}"}
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// Close closes every consumer instance and Kafka client.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.stop)
	instances := p.instances
	p.instances = map[string]*instance{}
	for k, cl := range p.clients {
		cl.Close()
		delete(p.clients, k)
	}
	p.mu.Unlock()
	p.wg.Wait()
	for _, in := range instances {
		in.mu.Lock()
		in.close()
		in.mu.Unlock()
	}
}

// apiError is REST Proxy's error body.
type apiError struct {
	status int
	Code   int    `json:"error_code"`
	Msg    string `json:"message"`
}

func (e *apiError) Error() string { return e.Msg }

func errorf(status, code int, format string, args ...any) *apiError {
	return &apiError{status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", ContentTypeV2)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = kafkaError(err)
	}
	writeJSON(w, ae.status, ae)
}

// kafkaError maps a Kafka client error to REST Proxy's answer.
func kafkaError(err error) *apiError {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return errorf(http.StatusNotFound, 40401, "Topic not found.")
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
		return errorf(http.StatusForbidden, 40301, "%v", err)
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return errorf(http.StatusUnauthorized, 40101, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, 50002, "Kafka error: %v", err)
	}
	return errorf(http.StatusInternalServerError, 50002, "Kafka error: %v", err)
}

// commonOpts are every Kafka client's options but its seeds and login.
func (p *Proxy) commonOpts() []kgo.Opt {
	return []kgo.Opt{kgo.RecordPartitioner(explicitPartitioner{}), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MetadataMinAge(250 * time.Millisecond)}
}

// baseOpts are the options of a client of the node's own listener.
func (p *Proxy) baseOpts() []kgo.Opt {
	return append(append([]kgo.Opt{kgo.SeedBrokers(p.cfg.Seeds()...)}, p.commonOpts()...), p.cfg.ClientOpts...)
}

// client is the Kafka client of the request's identity, made on first
// use and kept.
func (p *Proxy) client(id *identity) (*kgo.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errorf(http.StatusServiceUnavailable, 50003, "shutting down")
	}
	if cl := p.clients[id.key]; cl != nil {
		return cl, nil
	}
	cl, err := kgo.NewClient(id.opts...)
	if err != nil {
		return nil, err
	}
	if len(p.clients) >= 256 { // bound the per-user clients kept
		for k, old := range p.clients {
			old.Close()
			delete(p.clients, k)
		}
	}
	p.clients[id.key] = cl
	return cl, nil
}

// run gives a handler its client, admin client and a bounded context.
func (p *Proxy) run(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context, id *identity, cl *kgo.Client, adm *kadm.Client) error) {
	id, err := p.identify(r)
	if err != nil {
		writeError(w, err)
		return
	}
	cl, err := p.client(id)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.Timeout)
	defer cancel()
	if err := fn(ctx, id, cl, kadm.NewClient(cl)); err != nil {
		writeError(w, err)
	}
}

func (p *Proxy) listTopics(w http.ResponseWriter, r *http.Request) {
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		names := []string{}
		for _, name := range topics.Names() {
			if id.mayTopic(acl.OpDescribe, name) {
				names = append(names, name)
			}
		}
		writeJSON(w, http.StatusOK, names)
		return nil
	})
}

type replica struct {
	Broker int32 `json:"broker"`
	Leader bool  `json:"leader"`
	InSync bool  `json:"in_sync"`
}

type partitionInfo struct {
	Partition int32     `json:"partition"`
	Leader    int32     `json:"leader"`
	Replicas  []replica `json:"replicas"`
}

// topic describes one topic: 403 without DESCRIBE on it, 40401 when it
// does not exist.
func topic(ctx context.Context, id *identity, adm *kadm.Client, name string) (kadm.TopicDetail, error) {
	if !id.mayTopic(acl.OpDescribe, name) {
		return kadm.TopicDetail{}, forbidden(acl.OpDescribe, acl.ResourceTopic, name)
	}
	topics, err := adm.ListTopics(ctx, name)
	if err != nil {
		return kadm.TopicDetail{}, err
	}
	t, ok := topics[name]
	if !ok || errors.Is(t.Err, kerr.UnknownTopicOrPartition) {
		return kadm.TopicDetail{}, errorf(http.StatusNotFound, 40401, "Topic %s not found.", name)
	}
	return t, t.Err
}

func partitionsOf(t kadm.TopicDetail) []partitionInfo {
	out := []partitionInfo{}
	for _, pd := range t.Partitions.Sorted() {
		pi := partitionInfo{Partition: pd.Partition, Leader: pd.Leader, Replicas: []replica{}}
		for _, b := range pd.Replicas {
			pi.Replicas = append(pi.Replicas, replica{Broker: b, Leader: b == pd.Leader, InSync: slices.Contains(pd.ISR, b)})
		}
		out = append(out, pi)
	}
	return out
}

func (p *Proxy) getTopic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		t, err := topic(ctx, id, adm, name)
		if err != nil {
			return err
		}
		configs := map[string]string{}
		if !id.mayTopic(acl.OpDescribeConfigs, name) {
			// the configs stay empty, as a refused DescribeConfigs leaves them
		} else if rcs, err := adm.DescribeTopicConfigs(ctx, name); err == nil {
			if rc, err := rcs.On(name, nil); err == nil && rc.Err == nil {
				for _, c := range rc.Configs {
					if c.Value != nil {
						configs[c.Key] = *c.Value
					}
				}
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "configs": configs, "partitions": partitionsOf(t)})
		return nil
	})
}

func (p *Proxy) getPartitions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		t, err := topic(ctx, id, adm, name)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, partitionsOf(t))
		return nil
	})
}

func (p *Proxy) getPartition(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	part, err := strconv.ParseInt(r.PathValue("partition"), 10, 32)
	if err != nil {
		writeError(w, errorf(http.StatusNotFound, 40402, "Partition %q not found.", r.PathValue("partition")))
		return
	}
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		t, err := topic(ctx, id, adm, name)
		if err != nil {
			return err
		}
		for _, pi := range partitionsOf(t) {
			if pi.Partition == int32(part) {
				writeJSON(w, http.StatusOK, pi)
				return nil
			}
		}
		return errorf(http.StatusNotFound, 40402, "Partition %d of %s not found.", part, name)
	})
}

func (p *Proxy) listBrokers(w http.ResponseWriter, r *http.Request) {
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		brokers, err := adm.ListBrokers(ctx)
		if err != nil {
			return err
		}
		ids := []int32{}
		for _, b := range brokers {
			ids = append(ids, b.NodeID)
		}
		slices.Sort(ids)
		writeJSON(w, http.StatusOK, map[string]any{"brokers": ids})
		return nil
	})
}

// produceRecord is one record of a produce request.
type produceRecord struct {
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition *int32          `json:"partition"`
}

type produceOffset struct {
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	ErrorCode *int    `json:"error_code"`
	Error     *string `json:"error"`
}

// format is the embedded format a produce request's content type names.
func format(r *http.Request) (string, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil:
	case ct == ContentTypeJSON || ct == "application/json":
		return "json", nil
	case ct == ContentTypeBinary:
		return "binary", nil
	}
	return "", errorf(http.StatusUnsupportedMediaType, 415, "Unsupported content type %q: want %s or %s", r.Header.Get("Content-Type"), ContentTypeJSON, ContentTypeBinary)
}

// bytesOf decodes a key or value in the request's format; nil stays nil.
func bytesOf(raw json.RawMessage, format string) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if format == "json" {
		return []byte(raw), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errors.New("a binary key or value must be a base64 string")
	}
	return base64.StdEncoding.DecodeString(s)
}

func (p *Proxy) produce(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	fmtName, err := format(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var fixed *int32
	if s := r.PathValue("partition"); s != "" {
		id, err := strconv.ParseInt(s, 10, 32)
		if err != nil || id < 0 {
			writeError(w, errorf(http.StatusNotFound, 40402, "Partition %q not found.", s))
			return
		}
		id32 := int32(id)
		fixed = &id32
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
	if err != nil {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, 413, "request body over %d bytes", p.cfg.MaxBodyBytes))
		return
	}
	var req struct {
		Records []produceRecord `json:"records"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, errorf(http.StatusUnprocessableEntity, 42201, "Invalid request body: %v", err))
		return
	}
	if len(req.Records) == 0 {
		writeError(w, errorf(http.StatusUnprocessableEntity, 42202, "No records to produce."))
		return
	}
	recs := make([]*kgo.Record, 0, len(req.Records))
	for i, pr := range req.Records {
		key, kerr := bytesOf(pr.Key, fmtName)
		value, verr := bytesOf(pr.Value, fmtName)
		if err := errors.Join(kerr, verr); err != nil {
			writeError(w, errorf(http.StatusUnprocessableEntity, 42201, "record %d: %v", i, err))
			return
		}
		rec := &kgo.Record{Topic: name, Key: key, Value: value, Context: context.Background()}
		part := pr.Partition
		if fixed != nil {
			part = fixed
		}
		if part != nil {
			rec.Context = context.WithValue(rec.Context, partitionKey{}, *part)
		}
		recs = append(recs, rec)
	}
	p.run(w, r, func(ctx context.Context, id *identity, cl *kgo.Client, adm *kadm.Client) error {
		t, err := topic(ctx, id, adm, name)
		if err != nil {
			return err
		}
		if !id.mayTopic(acl.OpWrite, name) {
			return forbidden(acl.OpWrite, acl.ResourceTopic, name)
		}
		for _, rec := range recs {
			if part, ok := rec.Context.Value(partitionKey{}).(int32); ok && (part < 0 || int(part) >= len(t.Partitions)) {
				return errorf(http.StatusNotFound, 40402, "Partition %d of %s not found.", part, name)
			}
		}
		results := cl.ProduceSync(ctx, recs...)
		resp := struct {
			KeySchemaID   *int            `json:"key_schema_id"`
			ValueSchemaID *int            `json:"value_schema_id"`
			Offsets       []produceOffset `json:"offsets"`
		}{Offsets: []produceOffset{}}
		for _, res := range results {
			o := produceOffset{Partition: res.Record.Partition, Offset: res.Record.Offset}
			if res.Err != nil {
				code, msg := 50002, res.Err.Error()
				var ke *kerr.Error
				if errors.As(res.Err, &ke) && ke.Code == kerr.TopicAuthorizationFailed.Code {
					code = 40301
				}
				o.Offset, o.ErrorCode, o.Error = -1, &code, &msg
			}
			resp.Offsets = append(resp.Offsets, o)
		}
		writeJSON(w, http.StatusOK, resp)
		return nil
	})
}

// partitionKey carries a record's requested partition in its context.
type partitionKey struct{}

// explicitPartitioner sends a record to the partition its request named,
// else as Kafka's default partitioner does (murmur2 of the key; sticky
// without one), so REST and Kafka producers agree on where a key goes.
type explicitPartitioner struct{}

func (explicitPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	return explicitTopicPartitioner{kgo.StickyKeyPartitioner(nil).ForTopic(t)}
}

type explicitTopicPartitioner struct{ dflt kgo.TopicPartitioner }

// OnNewBatch lets the sticky default move on, as kgo asks of sticky
// partitioners.
func (p explicitTopicPartitioner) OnNewBatch() {
	if s, ok := p.dflt.(interface{ OnNewBatch() }); ok {
		s.OnNewBatch()
	}
}

func (p explicitTopicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }
func (p explicitTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Context != nil {
		if part, ok := r.Context.Value(partitionKey{}).(int32); ok && int(part) < n {
			return int(part)
		}
	}
	return p.dflt.Partition(r, n)
}
