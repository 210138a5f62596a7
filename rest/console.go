package rest

// The web console at / (plain HTML, CSS and JavaScript embedded in the
// binary; no build step) and the one endpoint it reads, /v1/overview:
// brokers and the controller, topics with each partition's leader,
// replicas, ISR, high watermark and size on disk, and groups with their
// lag. The console computes throughput from successive high watermarks
// and tails topics and creates or deletes them through the API above.

import (
	"context"
	"embed"
	"io/fs"
	"net/http"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/acl"
)

//go:embed console
var consoleFiles embed.FS

func (p *Proxy) consoleRoutes() {
	sub, _ := fs.Sub(consoleFiles, "console")
	files := http.FileServerFS(sub)
	p.mux.Handle("GET /{$}", files)
	p.mux.Handle("GET /console/", http.StripPrefix("/console/", files))
	p.mux.HandleFunc("GET /v1/overview", p.overview)
}

type overviewPartition struct {
	Partition     int32   `json:"partition"`
	Leader        int32   `json:"leader"`
	Replicas      []int32 `json:"replicas"`
	ISR           []int32 `json:"isr"`
	HighWatermark int64   `json:"high_watermark"`
	SizeBytes     int64   `json:"size_bytes"`
}

type overviewTopic struct {
	Name       string              `json:"name"`
	Partitions []overviewPartition `json:"partitions"`
}

type overviewGroup struct {
	Group   string `json:"group"`
	State   string `json:"state"`
	Members int    `json:"members"`
	Lag     int64  `json:"lag"`
}

func (p *Proxy) overview(w http.ResponseWriter, r *http.Request) {
	p.run(w, r, func(ctx context.Context, id *identity, _ *kgo.Client, adm *kadm.Client) error {
		md, err := adm.Metadata(ctx)
		if err != nil {
			return err
		}
		type broker struct {
			ID         int32  `json:"id"`
			Host       string `json:"host"`
			Port       int32  `json:"port"`
			Controller bool   `json:"controller"`
		}
		brokers := []broker{}
		for _, b := range md.Brokers {
			brokers = append(brokers, broker{b.NodeID, b.Host, b.Port, b.NodeID == md.Controller})
		}
		ends, _ := adm.ListEndOffsets(ctx, md.Topics.Names()...)
		dirs, _ := adm.DescribeAllLogDirs(ctx, nil)
		size := func(t string, part, leader int32) int64 {
			if d, ok := dirs[leader]; ok {
				if lp, ok := d.LookupPartition(t, part); ok {
					return lp.Size
				}
			}
			return -1
		}
		topics := []overviewTopic{}
		for _, name := range md.Topics.Names() {
			td := md.Topics[name]
			if td.IsInternal || !id.mayTopic(acl.OpDescribe, name) {
				continue
			}
			ot := overviewTopic{Name: name, Partitions: []overviewPartition{}}
			for _, pd := range td.Partitions.Sorted() {
				hw := int64(-1)
				if o, ok := ends.Lookup(name, pd.Partition); ok && o.Err == nil {
					hw = o.Offset
				}
				ot.Partitions = append(ot.Partitions, overviewPartition{Partition: pd.Partition, Leader: pd.Leader,
					Replicas: slices.Sorted(slices.Values(pd.Replicas)), ISR: slices.Sorted(slices.Values(pd.ISR)),
					HighWatermark: hw, SizeBytes: size(name, pd.Partition, pd.Leader)})
			}
			topics = append(topics, ot)
		}
		groups := []overviewGroup{}
		listed, err := adm.ListGroups(ctx)
		for g := range listed {
			if !id.mayGroup(acl.OpDescribe, g) {
				delete(listed, g)
			}
		}
		if err == nil && len(listed) > 0 {
			lags, _ := adm.Lag(ctx, listed.Groups()...)
			for _, g := range listed.Sorted() {
				og := overviewGroup{Group: g.Group, State: g.State}
				if l, ok := lags[g.Group]; ok {
					og.Members, og.Lag = len(l.Members), l.Lag.Total()
				}
				groups = append(groups, og)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"cluster_id": md.Cluster, "controller": md.Controller,
			"brokers": brokers, "topics": topics, "groups": groups})
		return nil
	})
}
