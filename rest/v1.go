package rest

// mlog's own additions under /v1/: creating and deleting topics, groups
// with their members and lag per partition, and the OpenAPI document of
// the whole HTTP API.

import (
	"context"
	_ "embed"
	"errors"
	"net/http"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/acl"
)

//go:embed openapi.json
var openAPI []byte

func (p *Proxy) v1Routes() {
	p.mux.HandleFunc("POST /v1/topics", p.createTopic)
	p.mux.HandleFunc("DELETE /v1/topics/{topic}", p.deleteTopic)
	p.mux.HandleFunc("GET /v1/groups", p.listGroups)
	p.mux.HandleFunc("GET /v1/groups/{group}", p.describeGroup)
	p.mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
}

func (p *Proxy) createTopic(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name              string            `json:"name"`
		Partitions        int32             `json:"partitions"`
		ReplicationFactor int16             `json:"replication_factor"`
		Configs           map[string]string `json:"configs"`
	}
	if err := p.readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Name == "" {
		writeError(w, errorf(http.StatusUnprocessableEntity, 42202, "name is required"))
		return
	}
	if req.Partitions == 0 {
		req.Partitions = -1
	}
	if req.ReplicationFactor == 0 {
		req.ReplicationFactor = -1
	}
	configs := map[string]*string{}
	for k, v := range req.Configs {
		configs[k] = &v
	}
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		if !id.may(acl.OpCreate, acl.ResourceCluster, acl.ClusterName) && !id.mayTopic(acl.OpCreate, req.Name) {
			return forbidden(acl.OpCreate, acl.ResourceTopic, req.Name)
		}
		res, err := adm.CreateTopic(ctx, req.Partitions, req.ReplicationFactor, configs, req.Name)
		if err == nil {
			err = res.Err
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			return errorf(http.StatusConflict, 40901, "Topic %s already exists.", req.Name)
		case errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.InvalidPartitions),
			errors.Is(err, kerr.InvalidReplicationFactor), errors.Is(err, kerr.InvalidConfig):
			return errorf(http.StatusUnprocessableEntity, 42205, "%v", err)
		case err != nil:
			return err
		}
		writeJSON(w, http.StatusCreated, map[string]any{"name": req.Name, "partitions": res.NumPartitions, "replication_factor": res.ReplicationFactor})
		return nil
	})
}

func (p *Proxy) deleteTopic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		if !id.mayTopic(acl.OpDelete, name) {
			return forbidden(acl.OpDelete, acl.ResourceTopic, name)
		}
		res, err := adm.DeleteTopic(ctx, name)
		if err == nil {
			err = res.Err
		}
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return errorf(http.StatusNotFound, 40401, "Topic %s not found.", name)
		}
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (p *Proxy) listGroups(w http.ResponseWriter, r *http.Request) {
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		groups, err := adm.ListGroups(ctx)
		if err != nil {
			return err
		}
		out := []map[string]any{}
		for _, g := range groups.Sorted() {
			if !id.mayGroup(acl.OpDescribe, g.Group) {
				continue
			}
			out = append(out, map[string]any{"group": g.Group, "state": g.State, "protocol_type": g.ProtocolType, "coordinator": g.Coordinator})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

type memberJSON struct {
	MemberID   string `json:"member_id"`
	InstanceID string `json:"instance_id,omitempty"`
	ClientID   string `json:"client_id"`
	ClientHost string `json:"client_host"`
}

type lagJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	MemberID  string `json:"member_id,omitempty"`
}

func (p *Proxy) describeGroup(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("group")
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		if !id.mayGroup(acl.OpDescribe, name) {
			return forbidden(acl.OpDescribe, acl.ResourceGroup, name)
		}
		lags, err := adm.Lag(ctx, name)
		if err != nil {
			return err
		}
		l, ok := lags[name]
		if !ok || l.State == "Dead" || l.State == "" {
			return errorf(http.StatusNotFound, 40404, "Group %s not found.", name)
		}
		if err := l.Error(); err != nil {
			return err
		}
		members := []memberJSON{}
		for _, m := range l.Members {
			mj := memberJSON{MemberID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost}
			if m.InstanceID != nil {
				mj.InstanceID = *m.InstanceID
			}
			members = append(members, mj)
		}
		lag := []lagJSON{}
		for _, ml := range l.Lag.Sorted() {
			if !id.mayTopic(acl.OpDescribe, ml.Topic) {
				continue
			}
			lj := lagJSON{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At, End: ml.End.Offset, Lag: ml.Lag}
			if ml.Member != nil {
				lj.MemberID = ml.Member.MemberID
			}
			lag = append(lag, lj)
		}
		slices.SortFunc(lag, func(a, b lagJSON) int {
			if a.Topic != b.Topic {
				if a.Topic < b.Topic {
					return -1
				}
				return 1
			}
			return int(a.Partition - b.Partition)
		})
		writeJSON(w, http.StatusOK, map[string]any{"group": name, "state": l.State, "protocol": l.Protocol, "members": members, "lag": lag})
		return nil
	})
}
