package redisx

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis has one process-wide logger for what it notices on its own
// (failed dials, pool trouble, Sentinel failovers), which prints plain lines
// to stderr. This package replaces it, once, with one that writes through
// slog at warn level, so those lines are structured like every other.

func init() { redis.SetLogger(goRedisLogger{}) }

var (
	target atomic.Pointer[slog.Logger]

	secretsMu sync.RWMutex
	secrets   = map[string]bool{}
)

// SetLogger sends go-redis's own log lines to log, at warn level, as
// {"msg":"redis client","detail":"..."}. Until it is called they go to
// slog.Default().
func SetLogger(log *slog.Logger) { target.Store(log) }

// hideInLogs makes the go-redis lines replace password wherever it appears
// (Connect registers each client's password; go-redis keeps it for the
// life of the process too).
func hideInLogs(password string) {
	if password == "" {
		return
	}
	secretsMu.Lock()
	secrets[password] = true
	secretsMu.Unlock()
}

// userinfo is the userinfo of a URL in a log line.
var userinfo = regexp.MustCompile(`([a-z][a-z0-9+.-]*://)[^\s/@]+@`)

// goRedisLogger implements go-redis's internal Logging interface.
type goRedisLogger struct{}

func (goRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	log := target.Load()
	if log == nil {
		log = slog.Default()
	}
	if !log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	line := strings.TrimSpace(fmt.Sprintf(format, v...))
	line = strings.TrimPrefix(line, "redis: ")
	line = userinfo.ReplaceAllString(line, "${1}xxxxx@")
	secretsMu.RLock()
	hide := slices.Collect(maps.Keys(secrets))
	secretsMu.RUnlock()
	slices.SortFunc(hide, func(a, b string) int { return len(b) - len(a) }) // a password inside another goes with it
	for _, s := range hide {
		line = strings.ReplaceAll(line, s, "xxxxx")
	}
	log.LogAttrs(ctx, slog.LevelWarn, "redis client", slog.String("detail", line))
}
