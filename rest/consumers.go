package rest

// Consumer instances (REST Proxy v2): each is a real member of its
// consumer group (a franz-go group consumer made at subscription), so
// its commits are the group's, shared with Kafka clients in the group.
// An instance lives on the node that created it and is closed after
// InstanceTimeout without requests; any other node forwards requests for
// it (forward.go).

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

type instance struct {
	group, name, format string
	reset               string // earliest or latest
	autoCommit          bool
	id                  *identity // who made it: only they may use it

	mu      sync.Mutex // one request at a time per instance
	cl      *kgo.Client
	topics  []string
	pending []*kgo.Record // polled, not yet returned (over max_bytes)
	// returned is, by topic and partition, the offset after the last
	// record returned: what a commit without offsets commits.
	returned map[string]map[int32]kgo.EpochOffset
	lastUsed time.Time
}

var errInstanceNotFound = errorf(http.StatusNotFound, 40403, "Consumer instance not found.")

// mayRead checks that the instance's user may read the group and topics
// (JoinGroup, OffsetCommit and Fetch need READ on them).
func (in *instance) mayRead(topics []string) error {
	if !in.id.mayGroup(acl.OpRead, in.group) {
		return forbidden(acl.OpRead, acl.ResourceGroup, in.group)
	}
	for _, t := range topics {
		if !in.id.mayTopic(acl.OpRead, t) {
			return forbidden(acl.OpRead, acl.ResourceTopic, t)
		}
	}
	return nil
}

func (in *instance) close() {
	if in.cl != nil {
		in.cl.Close()
		in.cl = nil
	}
}

func (p *Proxy) consumerRoutes() {
	p.mux.HandleFunc("POST /consumers/{group}", p.createInstance)
	base := "/consumers/{group}/instances/{name}"
	p.mux.HandleFunc("DELETE "+base, p.deleteInstance)
	p.mux.HandleFunc("POST "+base+"/subscription", p.subscribe)
	p.mux.HandleFunc("GET "+base+"/subscription", p.subscription)
	p.mux.HandleFunc("DELETE "+base+"/subscription", p.unsubscribe)
	p.mux.HandleFunc("GET "+base+"/records", p.records)
	p.mux.HandleFunc("POST "+base+"/offsets", p.commit)
	p.mux.HandleFunc("GET "+base+"/offsets", p.committed)
}

// readJSON decodes a bounded JSON body into v; an empty body leaves v.
func (p *Proxy) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
	if err != nil {
		return errorf(http.StatusRequestEntityTooLarge, 413, "request body over %d bytes", p.cfg.MaxBodyBytes)
	}
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(http.StatusUnprocessableEntity, 42201, "Invalid request body: %v", err)
	}
	return nil
}

func (p *Proxy) createInstance(w http.ResponseWriter, r *http.Request) {
	group := r.PathValue("group")
	var req struct {
		Name       string `json:"name"`
		Format     string `json:"format"`
		Reset      string `json:"auto.offset.reset"`
		AutoCommit string `json:"auto.commit.enable"`
	}
	if err := p.readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	in := &instance{group: group, name: req.Name, format: req.Format, reset: req.Reset, autoCommit: req.AutoCommit == "true", lastUsed: time.Now()}
	switch {
	case in.format == "":
		in.format = "binary" // REST Proxy's default
	case in.format != "json" && in.format != "binary":
		writeError(w, errorf(http.StatusUnprocessableEntity, 42204, "format %q: want json or binary", in.format))
		return
	}
	switch in.reset {
	case "":
		in.reset = "latest" // Kafka's default
	case "earliest", "latest":
	default:
		writeError(w, errorf(http.StatusUnprocessableEntity, 42204, "auto.offset.reset %q: want earliest or latest", in.reset))
		return
	}
	id, err := p.identify(r)
	if err != nil {
		writeError(w, err)
		return
	}
	in.id = id
	if in.name == "" {
		// Named after this node, so no other node makes the same name.
		in.name = "rest-" + strconv.Itoa(int(p.cfg.NodeID)) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	} else if r.Header.Get(HeaderForwarded) == "" && p.heldByPeer(r, id, group, in.name) {
		writeError(w, errorf(http.StatusConflict, 40902, "Consumer instance %s already exists in group %s.", in.name, group))
		return
	}
	key := group + "/" + in.name
	p.mu.Lock()
	if p.instances[key] != nil {
		p.mu.Unlock()
		writeError(w, errorf(http.StatusConflict, 40902, "Consumer instance %s already exists in group %s.", in.name, group))
		return
	}
	p.instances[key] = in
	p.mu.Unlock()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	writeJSON(w, http.StatusOK, map[string]string{"instance_id": in.name,
		"base_uri": scheme + "://" + r.Host + "/consumers/" + group + "/instances/" + in.name})
}

// withInstance runs fn on the named instance, one request at a time. An
// instance another node holds is served there: the request is forwarded.
// Only whoever made an instance may use it; to anyone else it does not
// exist.
func (p *Proxy) withInstance(w http.ResponseWriter, r *http.Request, fn func(in *instance) error) {
	id, err := p.identify(r)
	if err != nil {
		writeError(w, err)
		return
	}
	key := r.PathValue("group") + "/" + r.PathValue("name")
	p.mu.Lock()
	in := p.instances[key]
	p.mu.Unlock()
	if in == nil || in.id.owner != id.owner {
		if r.Header.Get(HeaderForwarded) == "" && p.forward(w, r, id) {
			return
		}
		writeError(w, errInstanceNotFound)
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.lastUsed = time.Now()
	if err := fn(in); err != nil {
		writeError(w, err)
	}
}

func (p *Proxy) deleteInstance(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("group") + "/" + r.PathValue("name")
	p.withInstance(w, r, func(in *instance) error {
		in.close() // leaves the group
		p.mu.Lock()
		delete(p.instances, key)
		p.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (p *Proxy) subscribe(w http.ResponseWriter, r *http.Request) {
	p.withInstance(w, r, func(in *instance) error {
		var req struct {
			Topics []string `json:"topics"`
		}
		if err := p.readJSON(w, r, &req); err != nil {
			return err
		}
		if len(req.Topics) == 0 {
			return errorf(http.StatusUnprocessableEntity, 42202, "No topics to subscribe to.")
		}
		if err := in.mayRead(req.Topics); err != nil {
			return err
		}
		in.close()
		reset := kgo.NewOffset().AtEnd()
		if in.reset == "earliest" {
			reset = kgo.NewOffset().AtStart()
		}
		opts := append(slices.Clone(in.id.opts), kgo.ConsumerGroup(in.group), kgo.ConsumeTopics(req.Topics...), kgo.ConsumeResetOffset(reset))
		// Offsets are committed from what was returned, never from what
		// the client polled ahead (auto.commit.enable commits after each
		// read).
		opts = append(opts, kgo.DisableAutoCommit())
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return err
		}
		in.cl, in.topics, in.pending, in.returned = cl, slices.Clone(req.Topics), nil, map[string]map[int32]kgo.EpochOffset{}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (p *Proxy) subscription(w http.ResponseWriter, r *http.Request) {
	p.withInstance(w, r, func(in *instance) error {
		topics := in.topics
		if topics == nil {
			topics = []string{}
		}
		writeJSON(w, http.StatusOK, map[string][]string{"topics": topics})
		return nil
	})
}

func (p *Proxy) unsubscribe(w http.ResponseWriter, r *http.Request) {
	p.withInstance(w, r, func(in *instance) error {
		in.close()
		in.topics, in.pending = nil, nil
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

type consumedRecord struct {
	Topic     string          `json:"topic"`
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
}

// embedValue writes a key or value in the instance's format: the JSON text
// itself, or base64; null for none.
func embedValue(b []byte, format string) (json.RawMessage, error) {
	if b == nil {
		return json.RawMessage("null"), nil
	}
	if format == "binary" {
		return json.Marshal(base64.StdEncoding.EncodeToString(b))
	}
	if !json.Valid(b) {
		return nil, errors.New("a record is not JSON; read it with format binary")
	}
	return json.RawMessage(b), nil
}

func (p *Proxy) records(w http.ResponseWriter, r *http.Request) {
	p.withInstance(w, r, func(in *instance) error {
		if in.cl == nil {
			return errorf(http.StatusConflict, 40903, "Consumer instance has no subscription.")
		}
		if err := in.mayRead(in.topics); err != nil {
			return err
		}
		timeout := time.Second
		if s := r.URL.Query().Get("timeout"); s != "" {
			ms, err := strconv.ParseInt(s, 10, 64)
			if err != nil || ms < 0 {
				return errorf(http.StatusBadRequest, 40002, "timeout %q: want milliseconds", s)
			}
			timeout = min(time.Duration(ms)*time.Millisecond, p.cfg.Timeout)
		}
		maxBytes := int64(p.cfg.MaxBodyBytes)
		if s := r.URL.Query().Get("max_bytes"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				return errorf(http.StatusBadRequest, 40002, "max_bytes %q: want a positive number", s)
			}
			maxBytes = min(n, maxBytes)
		}
		if len(in.pending) == 0 {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			fetches := in.cl.PollRecords(ctx, 1000)
			cancel()
			if err := fetches.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				return err
			}
			in.pending = fetches.Records()
		}
		out := []consumedRecord{}
		var size int64
		n := 0
		for _, rec := range in.pending {
			size += int64(len(rec.Key) + len(rec.Value))
			if size > maxBytes && n > 0 {
				break
			}
			key, kerr := embedValue(rec.Key, in.format)
			value, verr := embedValue(rec.Value, in.format)
			if err := errors.Join(kerr, verr); err != nil {
				return errorf(http.StatusInternalServerError, 50002, "%s-%d at %d: %v", rec.Topic, rec.Partition, rec.Offset, err)
			}
			out = append(out, consumedRecord{Topic: rec.Topic, Key: key, Value: value, Partition: rec.Partition, Offset: rec.Offset})
			if in.returned[rec.Topic] == nil {
				in.returned[rec.Topic] = map[int32]kgo.EpochOffset{}
			}
			in.returned[rec.Topic][rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
			n++
		}
		in.pending = in.pending[n:]
		if in.autoCommit && n > 0 {
			in.cl.CommitOffsets(context.Background(), in.returned, nil)
		}
		ct := ContentTypeBinary
		if in.format == "json" {
			ct = ContentTypeJSON
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		return json.NewEncoder(w).Encode(out)
	})
}

type topicPartitionOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Metadata  string `json:"metadata,omitempty"`
}

// commit commits the offsets given (each the offset of the last record
// consumed, as REST Proxy takes them: the group resumes after it), or
// with none everything this instance returned.
func (p *Proxy) commit(w http.ResponseWriter, r *http.Request) {
	p.withInstance(w, r, func(in *instance) error {
		if in.cl == nil {
			return errorf(http.StatusConflict, 40903, "Consumer instance has no subscription.")
		}
		var req struct {
			Offsets []topicPartitionOffset `json:"offsets"`
		}
		if err := p.readJSON(w, r, &req); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(r.Context(), p.cfg.Timeout)
		defer cancel()
		offsets := in.returned
		if len(req.Offsets) > 0 {
			offsets = map[string]map[int32]kgo.EpochOffset{}
		}
		for _, o := range req.Offsets {
			if err := in.mayRead([]string{o.Topic}); err != nil {
				return err
			}
			if offsets[o.Topic] == nil {
				offsets[o.Topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[o.Topic][o.Partition] = kgo.EpochOffset{Epoch: -1, Offset: o.Offset + 1}
		}
		if len(offsets) == 0 {
			w.Header().Set("Content-Type", ContentTypeV2)
			w.WriteHeader(http.StatusOK)
			return nil
		}
		var cerr error
		in.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			cerr = err
			if err == nil && resp != nil {
				cerr = offsetCommitErr(resp)
			}
		})
		if cerr != nil {
			return cerr
		}
		w.Header().Set("Content-Type", ContentTypeV2)
		w.WriteHeader(http.StatusOK)
		return nil
	})
}

// offsetCommitErr is the first partition error of a commit.
func offsetCommitErr(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}

// committed answers the group's committed offsets of the partitions the
// body names (the offsets the group resumes from).
func (p *Proxy) committed(w http.ResponseWriter, r *http.Request) {
	p.withInstance(w, r, func(in *instance) error {
		var req struct {
			Partitions []struct {
				Topic     string `json:"topic"`
				Partition int32  `json:"partition"`
			} `json:"partitions"`
		}
		if err := p.readJSON(w, r, &req); err != nil {
			return err
		}
		if !in.id.mayGroup(acl.OpDescribe, in.group) {
			return forbidden(acl.OpDescribe, acl.ResourceGroup, in.group)
		}
		cl := in.cl
		if cl == nil {
			var err error
			if cl, err = kgo.NewClient(in.id.opts...); err != nil {
				return err
			}
			defer cl.Close()
		}
		ctx, cancel := context.WithTimeout(r.Context(), p.cfg.Timeout)
		defer cancel()
		fetched, err := kadm.NewClient(cl).FetchOffsets(ctx, in.group)
		if err != nil {
			return err
		}
		out := []topicPartitionOffset{}
		for _, tp := range req.Partitions {
			if o, ok := fetched.Lookup(tp.Topic, tp.Partition); ok && o.Err == nil && in.id.mayTopic(acl.OpDescribe, tp.Topic) {
				out = append(out, topicPartitionOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o.At, Metadata: o.Metadata})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"offsets": out})
		return nil
	})
}

// expireLoop closes instances idle longer than InstanceTimeout.
func (p *Proxy) expireLoop() {
	defer p.wg.Done()
	t := time.NewTicker(min(p.cfg.InstanceTimeout/4, 10*time.Second))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		var idle []*instance
		for key, in := range p.instances {
			if in.mu.TryLock() {
				if time.Since(in.lastUsed) > p.cfg.InstanceTimeout {
					idle = append(idle, in)
					delete(p.instances, key)
				}
				in.mu.Unlock()
			}
		}
		p.mu.Unlock()
		for _, in := range idle {
			in.mu.Lock()
			in.close()
			in.mu.Unlock()
		}
	}
}
