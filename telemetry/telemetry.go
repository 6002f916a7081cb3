// Package telemetry sets up OpenTelemetry exporters for tendril (and the
// rest of the process): SetupFromEnv configures traces and metrics from
// the standard OTEL_* environment variables, and Prometheus serves the
// metrics of a MeterProvider on a /metrics endpoint.
//
// sqlish uses the global providers unless sqlish.Config.TracerProvider or
// MeterProvider says otherwise, so after SetupFromEnv every DB reports:
//
//	shutdown, err := telemetry.SetupFromEnv(ctx)
//	if err != nil { ... }
//	defer shutdown(context.Background()) // flushes what is buffered
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tendril-db/tendril/internal/errlist"
)

// SetupFromEnv installs global tracer and meter providers whose exporters
// come from the standard environment variables, through
// go.opentelemetry.io/contrib/exporters/autoexport:
//
//	OTEL_TRACES_EXPORTER   otlp (default), console, none
//	OTEL_METRICS_EXPORTER  otlp (default), prometheus, console, none
//	OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, grpc), OTEL_EXPORTER_OTLP_HEADERS, ...
//	OTEL_EXPORTER_PROMETHEUS_HOST, OTEL_EXPORTER_PROMETHEUS_PORT
//	OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
//	OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, OTEL_METRIC_EXPORT_INTERVAL, OTEL_BSP_*
//
// It also installs the W3C trace-context and baggage propagators. The
// returned shutdown flushes buffered spans and metrics and stops the
// exporters; call it before the process exits.
func SetupFromEnv(ctx context.Context) (shutdown func(context.Context) error, err error) {
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithProcessRuntimeName(),
		resource.WithProcessRuntimeVersion())
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	spanExp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: span exporter: %w", err)
	}
	reader, err := autoexport.NewMetricReader(ctx)
	if err != nil {
		spanExp.Shutdown(ctx)
		return nil, fmt.Errorf("telemetry: metric reader: %w", err)
	}
	// The sampler comes from OTEL_TRACES_SAMPLER: the SDK reads it when
	// none is given.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(spanExp), sdktrace.WithResource(res))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	var once sync.Once
	return func(ctx context.Context) error {
		var err error
		once.Do(func() { err = errlist.Join(tp.Shutdown(ctx), mp.Shutdown(ctx)) })
		return err
	}, nil
}

// Prometheus is a MeterProvider whose metrics are read by the OTel
// Prometheus exporter into a registry of its own, served on /metrics by
// Start and rendered as text by Text.
type Prometheus struct {
	reg *prometheus.Registry
	mp  *sdkmetric.MeterProvider

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

// PrometheusOption configures NewPrometheus.
type PrometheusOption func(*promConfig)

type promConfig struct {
	runtime bool
	res     *resource.Resource
}

// WithGoCollectors adds the Go runtime and process collectors to the
// registry (go_*, process_*).
func WithGoCollectors() PrometheusOption { return func(c *promConfig) { c.runtime = true } }

// WithResource sets the resource reported as target_info.
func WithResource(r *resource.Resource) PrometheusOption { return func(c *promConfig) { c.res = r } }

// NewPrometheus returns a MeterProvider read by a Prometheus exporter.
// Pass MeterProvider() to sqlish.Config.MeterProvider (or install it with
// otel.SetMeterProvider).
func NewPrometheus(opts ...PrometheusOption) (*Prometheus, error) {
	var cfg promConfig
	for _, o := range opts {
		o(&cfg)
	}
	reg := prometheus.NewRegistry()
	if cfg.runtime {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithReader(exp)}
	if cfg.res != nil {
		mopts = append(mopts, sdkmetric.WithResource(cfg.res))
	}
	return &Prometheus{reg: reg, mp: sdkmetric.NewMeterProvider(mopts...)}, nil
}

// MeterProvider returns the provider whose metrics are exposed.
func (p *Prometheus) MeterProvider() metric.MeterProvider { return p.mp }

// Handler returns the /metrics handler, to mount on a server of one's own.
func (p *Prometheus) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{})
}

// Start serves /metrics on addr ("127.0.0.1:9464", ":0" for any free
// port) in the background and returns the address it listens on.
func (p *Prometheus) Start(addr string) (net.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return nil, errors.New("telemetry: Prometheus endpoint already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("telemetry: metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", p.Handler())
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	p.ln = ln
	srv := p.srv
	go srv.Serve(ln)
	return ln.Addr(), nil
}

// Text returns the current metrics in the Prometheus text format, as a
// scrape of /metrics would.
func (p *Prometheus) Text() (string, error) {
	mfs, err := p.reg.Gather()
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if eerr := enc.Encode(mf); eerr != nil {
			return b.String(), eerr
		}
	}
	return b.String(), err
}

// Stop stops the /metrics server, if started, and shuts the
// MeterProvider down. It is safe to call more than once.
func (p *Prometheus) Stop(ctx context.Context) error {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	if serr := p.mp.Shutdown(ctx); serr != nil && !errors.Is(serr, sdkmetric.ErrReaderShutdown) {
		err = errlist.Join(err, serr)
	}
	return err
}
