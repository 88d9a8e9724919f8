// Package pionlog adapts pion's logging interfaces (used by pion/turn and
// pion/webrtc) to a *slog.Logger.
//
// pion logs routine events (a packet from a peer without permission, an
// ICE candidate pair failing) at info and warn level; they land one level
// lower here (debug, info), so an operator's log stays about Parley.
// pion's errors are mostly about one remote party misbehaving and land at
// warn.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory is a logging.LoggerFactory writing to a slog.Logger, with the
// pion scope as the attribute "scope".
type Factory struct {
	Logger *slog.Logger
}

var _ logging.LoggerFactory = Factory{}

// NewLogger returns the logger of one pion scope ("turn", "ice", ...).
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	l := f.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return leveled{l.With("scope", scope)}
}

type leveled struct{ l *slog.Logger }

func (p leveled) log(level slog.Level, msg string) {
	if p.l.Enabled(context.Background(), level) {
		p.l.Log(context.Background(), level, msg)
	}
}

func (p leveled) logf(level slog.Level, format string, args ...any) {
	if p.l.Enabled(context.Background(), level) {
		p.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (p leveled) Trace(msg string)                  { p.log(slog.LevelDebug-4, msg) }
func (p leveled) Tracef(format string, args ...any) { p.logf(slog.LevelDebug-4, format, args...) }
func (p leveled) Debug(msg string)                  { p.log(slog.LevelDebug, msg) }
func (p leveled) Debugf(format string, args ...any) { p.logf(slog.LevelDebug, format, args...) }
func (p leveled) Info(msg string)                   { p.log(slog.LevelDebug, msg) }
func (p leveled) Infof(format string, args ...any)  { p.logf(slog.LevelDebug, format, args...) }
func (p leveled) Warn(msg string)                   { p.log(slog.LevelInfo, msg) }
func (p leveled) Warnf(format string, args ...any)  { p.logf(slog.LevelInfo, format, args...) }
func (p leveled) Error(msg string)                  { p.log(slog.LevelWarn, msg) }
func (p leveled) Errorf(format string, args ...any) { p.logf(slog.LevelWarn, format, args...) }
