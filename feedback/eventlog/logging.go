package eventlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger routes franz-go's client logs to slog. kgo's own info level logs
// every connection and metadata refresh, so it is only enabled when the
// application logs at debug.
type kgoLogger struct{ l *slog.Logger }

var _ kgo.Logger = kgoLogger{}

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	// franz-go names its error "err"; the project's lines say "error".
	for i := 0; i+1 < len(keyvals); i += 2 {
		if keyvals[i] == "err" {
			keyvals[i] = "error"
		}
	}
	k.l.Log(context.Background(), slogLevel(int(level)), msg, keyvals...)
}

// kfakeLogger does the same for the embedded broker.
type kfakeLogger struct{ l *slog.Logger }

var _ kfake.Logger = kfakeLogger{}

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	lv := slogLevel(int(level))
	if !k.l.Enabled(context.Background(), lv) {
		return
	}
	k.l.Log(context.Background(), lv, fmt.Sprintf(format, args...))
}

// slogLevel maps the level numbers kgo and kfake share (1 error, 2 warn,
// 3 info, 4 debug) to slog levels. Their info level is chatty, so it becomes
// slog's debug.
func slogLevel(l int) slog.Level {
	switch l {
	case 1:
		return slog.LevelError
	case 2:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}

// KafkaLogger is l as franz-go's logger, for the other Kafka clients of
// this service (the counters consumer).
func KafkaLogger(l *slog.Logger) kgo.Logger { return kgoLogger{l} }
