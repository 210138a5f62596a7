package metrics

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metrics holds one broker's metrics.
type Metrics struct {
	Registry *prometheus.Registry

	bytesIn, recordsIn, bytesOut *prometheus.CounterVec
	requests                     *prometheus.HistogramVec
	isrShrinks, isrExpands       prometheus.Counter
}

// New returns metrics in a fresh registry (with Go runtime and process
// collectors).
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mlog_topic_bytes_in_total",
			Help: "Record batch bytes appended by producers, per topic."}, []string{"topic"}),
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mlog_topic_records_in_total",
			Help: "Records appended by producers, per topic."}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mlog_topic_bytes_out_total",
			Help: "Record batch bytes sent to consumers (not followers), per topic."}, []string{"topic"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mlog_request_duration_seconds",
			Help:    "Time from reading a Kafka request to writing its response, per API.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"api"}),
		isrShrinks: prometheus.NewCounter(prometheus.CounterOpts{Name: "mlog_isr_shrinks_total",
			Help: "ISR changes this broker proposed as a leader that removed replicas."}),
		isrExpands: prometheus.NewCounter(prometheus.CounterOpts{Name: "mlog_isr_expands_total",
			Help: "ISR changes this broker proposed as a leader that added replicas."}),
	}
	m.Registry.MustRegister(m.bytesIn, m.recordsIn, m.bytesOut, m.requests, m.isrShrinks, m.isrExpands,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Produced counts a batch appended to topic. Nil-safe, as every hook.
func (m *Metrics) Produced(topic string, bytes, records int) {
	if m == nil {
		return
	}
	m.bytesIn.WithLabelValues(topic).Add(float64(bytes))
	m.recordsIn.WithLabelValues(topic).Add(float64(records))
}

// Fetched counts record bytes sent to a consumer.
func (m *Metrics) Fetched(topic string, bytes int64) {
	if m == nil {
		return
	}
	m.bytesOut.WithLabelValues(topic).Add(float64(bytes))
}

// Request records one request's latency.
func (m *Metrics) Request(apiKey int16, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(kmsg.NameForKey(apiKey)).Observe(d.Seconds())
}

// ISRChanged counts an ISR change from old to new size.
func (m *Metrics) ISRChanged(oldSize, newSize int) {
	switch {
	case m == nil:
	case newSize < oldSize:
		m.isrShrinks.Inc()
	case newSize > oldSize:
		m.isrExpands.Inc()
	}
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	srv *http.Server
	ln  net.Listener
	wg  sync.WaitGroup
	log *slog.Logger
}

// Serve listens on addr. /healthz answers 200 while the process serves;
// /readyz answers 200 once ready() is true (503 before). routes adds
// handlers by mux pattern (the REST API). With tlsCfg set it speaks TLS.
func Serve(addr string, tlsCfg *tls.Config, m *Metrics, ready func() bool, log *slog.Logger, routes map[string]http.Handler) (*Server, error) {
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.Handle(pattern, h)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// Go's profiler, as every Go service exposes it: CPU, heap,
	// allocation and goroutine profiles of a broker under load
	// (go tool pprof http://host:9644/debug/pprof/profile?seconds=20).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln, log: log}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is where the server listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the listener, letting scrapes in flight finish briefly.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	return err
}
