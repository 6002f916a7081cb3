package sqlish

import (
	"context"
	"log/slog"
)

// LogLevel is the least level of the records passed on to Config.Logger.
type LogLevel string

const (
	LogOff   LogLevel = "off"   // nothing
	LogError LogLevel = "error" // refused credentials, failures that stop work
	LogWarn  LogLevel = "warn"  // node changes, cleared pools, tend overruns, out-of-sync connections (the default)
	LogInfo  LogLevel = "info"  // initial discovery
	LogDebug LogLevel = "debug" // connections closed on errors
	LogTrace LogLevel = "trace" // one record per operation and per retry
)

// LevelTrace is the slog level of per-operation records: below
// slog.LevelDebug, so that a handler at DEBUG does not get them.
const LevelTrace = slog.LevelDebug - 4

// slogLevel returns the slog level of l and whether logging is on.
func (l LogLevel) slogLevel() (slog.Level, bool) {
	switch l {
	case LogOff:
		return 0, false
	case LogError:
		return slog.LevelError, true
	case LogInfo:
		return slog.LevelInfo, true
	case LogDebug:
		return slog.LevelDebug, true
	case LogTrace:
		return LevelTrace, true
	}
	return slog.LevelWarn, true
}

// newLogger returns the logger tendril writes to: Config.Logger filtered
// at Config.LogLevel, or a logger that discards everything.
func newLogger(l *slog.Logger, level LogLevel) *slog.Logger {
	min, on := level.slogLevel()
	if l == nil || !on {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(&levelHandler{min: min, h: l.Handler()})
}

// levelHandler passes on the records at or above min.
type levelHandler struct {
	min slog.Level
	h   slog.Handler
}

func (h *levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.h.Enabled(ctx, l)
}

func (h *levelHandler) Handle(ctx context.Context, r slog.Record) error { return h.h.Handle(ctx, r) }

func (h *levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &levelHandler{min: h.min, h: h.h.WithAttrs(as)}
}

func (h *levelHandler) WithGroup(name string) slog.Handler {
	return &levelHandler{min: h.min, h: h.h.WithGroup(name)}
}
