package broker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descHW = prometheus.NewDesc("mlog_partition_high_watermark", "High watermark of a partition replica on this broker.",
		[]string{"topic", "partition"}, nil)
	descLEO = prometheus.NewDesc("mlog_partition_log_end_offset", "Log end offset of a partition replica on this broker.",
		[]string{"topic", "partition"}, nil)
	descLag = prometheus.NewDesc("mlog_partition_uncommitted_records", "Log end offset minus high watermark: records not yet committed by the ISR.",
		[]string{"topic", "partition"}, nil)
	descUnder = prometheus.NewDesc("mlog_under_replicated_partitions", "Partitions this broker leads whose ISR is smaller than their replica set.",
		nil, nil)
	descController = prometheus.NewDesc("mlog_controller_active", "1 when this broker is the controller (the Raft leader).", nil, nil)
	descBrokers    = prometheus.NewDesc("mlog_brokers", "Brokers in the cluster metadata.", nil, nil)
)

// partitionCollector reads partition state at scrape time.
type partitionCollector struct{ b *Broker }

func (c partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHW, descLEO, descLag, descUnder, descController, descBrokers} {
		ch <- d
	}
}

func (c partitionCollector) Collect(ch chan<- prometheus.Metric) {
	under := 0
	for _, p := range c.b.replicas() {
		labels := []string{p.Topic(), strconv.Itoa(int(p.ID()))}
		hw, leo := p.HighWatermark(), p.LogEndOffset()
		ch <- prometheus.MustNewConstMetric(descHW, prometheus.GaugeValue, float64(hw), labels...)
		ch <- prometheus.MustNewConstMetric(descLEO, prometheus.GaugeValue, float64(leo), labels...)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(max(leo-hw, 0)), labels...)
		if r := p.Role(); r.LeaderID == r.Self && len(r.ISR) < len(r.Replicas) {
			under++
		}
	}
	ch <- prometheus.MustNewConstMetric(descUnder, prometheus.GaugeValue, float64(under))
	controller := 0.0
	if c.b.cl.node != nil && c.b.cl.node.IsLeader() {
		controller = 1
	}
	ch <- prometheus.MustNewConstMetric(descController, prometheus.GaugeValue, controller)
	ch <- prometheus.MustNewConstMetric(descBrokers, prometheus.GaugeValue, float64(len(c.b.Cluster("").Brokers)))
}
