package engine

import (
	"time"

	"github.com/pop3svc/pop3svc/engine/config"
	"github.com/pop3svc/pop3svc/session"
)

// settings is the part of the configuration the engine applies live; a
// Reload swaps the whole value atomically.
type settings struct {
	factory session.Factory

	socketMin       int
	socketThreshold int
	socketMax       int
	socketBacklog   int
	maxPerIP        int
	backlogWait     time.Duration
	backlogMaxInput int

	threadCount  int
	taskQueue    int
	loginTimeout time.Duration
	idleTimeout  time.Duration

	maxLine      int // the larger of max_line and max_auth_line: what the splitter keeps
	cmdLine      int // max_line: the limit of a line unless the session's LineLimit says otherwise
	maxInbound   int
	outboundHigh int
	outboundLow  int
}

// Fallbacks for settings left at zero (config.Validate normally refuses
// those; the engine must still not divide by zero or refuse everyone).
const (
	defaultThreadCount = 64
	defaultLineMax     = 1024
	defaultMaxInbound  = 64 << 10
	defaultHighMark    = 256 << 10
	defaultLowMark     = 64 << 10
	// lineOverhead is what one queued pipelined line costs beyond its
	// octets, counted against limits.max_inbound so that a flood of
	// empty lines is bounded too.
	lineOverhead = 32
	// chunkSize is the read size of a streamed reply body.
	chunkSize = 256 << 10
)

func newSettings(cfg *config.Config, f session.Factory) *settings {
	p, l := cfg.POP3, cfg.Limits
	s := &settings{
		factory:         f,
		socketMin:       max(p.SocketMin, 0),
		socketThreshold: max(p.SocketThreshold, 0),
		socketMax:       max(p.SocketMax, 1),
		socketBacklog:   max(p.SocketBacklog, 0),
		maxPerIP:        max(l.MaxConnsPerIP, 0),
		backlogWait:     p.BacklogWait.D(),
		backlogMaxInput: max(l.BacklogMaxInput, 0),
		threadCount:     p.ThreadCount,
		taskQueue:       max(p.TaskQueue, 0),
		loginTimeout:    p.LoginTimeout.D(),
		idleTimeout:     p.IdleTimeout.D(),
		maxLine:         max(l.MaxLine, l.MaxAuthLine),
		cmdLine:         l.MaxLine,
		maxInbound:      l.MaxInbound,
		outboundHigh:    l.OutboundHighMark,
		outboundLow:     l.OutboundLowMark,
	}
	if s.threadCount <= 0 {
		s.threadCount = defaultThreadCount
	}
	if s.maxLine <= 0 {
		s.maxLine = defaultLineMax
	}
	if s.cmdLine <= 0 || s.cmdLine > s.maxLine {
		s.cmdLine = s.maxLine
	}
	if s.maxInbound <= 0 {
		s.maxInbound = defaultMaxInbound
	}
	if s.outboundHigh <= 0 {
		s.outboundHigh = defaultHighMark
	}
	if s.outboundLow <= 0 || s.outboundLow > s.outboundHigh {
		s.outboundLow = min(defaultLowMark, s.outboundHigh)
	}
	return s
}
