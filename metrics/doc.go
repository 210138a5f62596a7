// Package metrics owns mlog's Prometheus registry and the HTTP listener that
// serves it (/metrics) with the health endpoints (/healthz, /readyz). The
// counters and histograms here are fed by the protocol and broker layers
// through small hooks; per-partition gauges are read at scrape time from a
// collector the broker registers, so nothing is sampled on the hot path.
package metrics
