package store

import (
	"context"
	"log/slog"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// slogCore sends etcd's zap logs to the daemon's slog logger, so the node
// has one log stream. Only warnings and above pass: etcd is chatty.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func newEtcdLogger(log *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{log: log.With("component", "etcd")})
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field(nil), c.fields...), fs...) {
		f.AddTo(enc)
	}
	if benign(e.Message, enc.Fields) {
		return nil
	}
	lvl := slog.LevelWarn
	if e.Level >= zapcore.ErrorLevel {
		lvl = slog.LevelError
	}
	attrs := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, k, v)
	}
	c.log.Log(context.Background(), lvl, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// benign drops warnings that say nothing to a corral administrator: etcd
// reporting its own listeners closing at shutdown, and setup choices that
// are deliberate here (one client port, no auth tokens: the client
// endpoint is a unix socket only this daemon can reach).
func benign(msg string, fields map[string]any) bool {
	errStr, _ := fields["error"].(string)
	if strings.Contains(errStr, "use of closed network connection") || strings.Contains(errStr, "server closed") || strings.Contains(errStr, "Server closed") {
		return true
	}
	return strings.HasPrefix(msg, "Running http and grpc server on single port") || strings.HasPrefix(msg, "simple token is not cryptographically signed")
}
