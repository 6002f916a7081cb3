package sqlish_test

import (
	"context"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/sqlish"
)

// BenchmarkGETTelemetry is a GET round trip on the memory backend with
// the no-op providers and with the SDK (every span sampled and recorded,
// no exporter; metrics aggregated for a manual reader).
func BenchmarkGETTelemetry(b *testing.B) {
	for _, mode := range []string{"noop", "sdk"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			cfg, err := sqlish.ParseDSN("memory://bench-telemetry")
			if err != nil {
				b.Fatal(err)
			}
			switch mode {
			case "noop":
				cfg.TracerProvider, cfg.MeterProvider = tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()
			case "sdk":
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				defer tp.Shutdown(ctx)
				defer mp.Shutdown(ctx)
				cfg.TracerProvider, cfg.MeterProvider = tp, mp
			}
			db, err := sqlish.ConnectConfig(ctx, "memory", cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				db.Close()
				memory.Lookup("bench-telemetry").Close()
			}()
			if _, err := db.Exec(ctx, "SET k value-of-sixteen"); err != nil {
				b.Fatal(err)
			}
			var v []byte
			b.ReportAllocs()
			for b.Loop() {
				if err := db.QueryRow(ctx, "GET k").Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
