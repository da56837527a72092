package engine

import (
	"time"

	"github.com/pop3svc/pop3svc/session"
)

// Config is what the engine takes from the service's configuration (the
// pop3.* and limits.* keys named beside each field). The service builds it;
// zero values fall back to safe defaults.
type Config struct {
	Listen        []string // pop3.listen: plaintext listeners
	ListenBacklog int      // pop3.listen_backlog: the kernel's accept queue; 0: somaxconn

	SocketMin       int           // pop3.socketmin
	SocketThreshold int           // pop3.socketthreshold
	SocketMax       int           // pop3.socketmax
	SocketBacklog   int           // pop3.socketbacklog
	BacklogWait     time.Duration // pop3.backlog_wait
	ThreadCount     int           // pop3.threadcount
	TaskQueue       int           // pop3.task_queue
	LoginTimeout    time.Duration // pop3.login_timeout
	LoginDeadline   time.Duration // pop3.login_deadline: connect to login in all; 0: none
	IdleTimeout     time.Duration // pop3.idle_timeout
	ShedAt          int           // pop3.shed_at: percent of SocketMax; 0: 90
	// RefuseDelay (pop3.refuse_delay) holds a connection refused for a
	// full pool this long, silent, before its refusal, RefuseHold
	// (pop3.refuse_hold) of them at most; 0: refused at once.
	RefuseDelay time.Duration
	RefuseHold  int

	MaxLine          int // limits.max_line
	MaxAuthLine      int // limits.max_auth_line
	MaxConnsPerIP    int // limits.max_conns_per_ip; 0: no limit
	MaxInbound       int // limits.max_inbound
	MaxPipelined     int // limits.max_pipelined; 0: 10000
	PreloginPerIP    int // limits.prelogin_per_ip; 0: no limit
	PreloginPerNet   int // limits.prelogin_per_net (IPv4 /24, IPv6 /64); 0: no limit
	PreloginPerNet48 int // limits.prelogin_per_net48 (IPv6 /48); 0: no limit
	BacklogMaxInput  int // limits.backlog_max_input
	OutboundHighMark int // limits.outbound_high_mark
	OutboundLowMark  int // limits.outbound_low_mark
}

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
	refuseDelay     time.Duration
	refuseHold      int

	threadCount  int
	taskQueue    int
	loginTimeout time.Duration
	idleTimeout  time.Duration
	// loginDeadline is the whole time from connect to authentication.
	loginDeadline time.Duration
	// shedAt is the number of served connections from which new
	// connections shed unauthenticated ones of the busiest network.
	shedAt int
	// Unauthenticated connections per address, per IPv4 /24 or IPv6 /64,
	// per IPv6 /48.
	preIP, preNet, preNet48 int

	maxLine      int // the larger of max_line and max_auth_line: what the splitter keeps
	cmdLine      int // max_line: the limit of a line unless the session's LineLimit says otherwise
	maxInbound   int
	maxPipelined int
	outboundHigh int
	outboundLow  int
}

// Fallbacks for settings left at zero (the service's configuration check
// normally refuses those; the engine must still not divide by zero or refuse everyone).
const (
	defaultThreadCount  = 64
	defaultLineMax      = 1024
	defaultMaxInbound   = 128 << 10
	defaultMaxPipelined = 10000
	defaultShedAt       = 90
	defaultHighMark     = 256 << 10
	defaultLowMark      = 64 << 10
	// lineOverhead is what one queued pipelined line costs beyond its
	// octets (its length prefix in the connection's queue), counted
	// against limits.max_inbound.
	lineOverhead = 4
	// chunkSize is the read size of a streamed reply body.
	chunkSize = 256 << 10
)

func newSettings(c *Config, f session.Factory) *settings {
	s := &settings{
		factory:         f,
		socketMin:       max(c.SocketMin, 0),
		socketThreshold: max(c.SocketThreshold, 0),
		socketMax:       max(c.SocketMax, 1),
		socketBacklog:   max(c.SocketBacklog, 0),
		maxPerIP:        max(c.MaxConnsPerIP, 0),
		backlogWait:     c.BacklogWait,
		backlogMaxInput: max(c.BacklogMaxInput, 0),
		refuseDelay:     max(c.RefuseDelay, 0),
		refuseHold:      max(c.RefuseHold, 0),
		threadCount:     c.ThreadCount,
		taskQueue:       max(c.TaskQueue, 0),
		loginTimeout:    c.LoginTimeout,
		idleTimeout:     c.IdleTimeout,
		maxLine:         max(c.MaxLine, c.MaxAuthLine),
		cmdLine:         c.MaxLine,
		maxInbound:      c.MaxInbound,
		maxPipelined:    c.MaxPipelined,
		loginDeadline:   c.LoginDeadline,
		preIP:           c.PreloginPerIP,
		preNet:          c.PreloginPerNet,
		preNet48:        c.PreloginPerNet48,
		outboundHigh:    c.OutboundHighMark,
		outboundLow:     c.OutboundLowMark,
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
	if s.maxPipelined <= 0 {
		s.maxPipelined = defaultMaxPipelined
	}
	shed := c.ShedAt
	if shed <= 0 || shed > 100 {
		shed = defaultShedAt
	}
	s.shedAt = max(1, s.socketMax*shed/100)
	if s.outboundHigh <= 0 {
		s.outboundHigh = defaultHighMark
	}
	if s.outboundLow <= 0 || s.outboundLow > s.outboundHigh {
		s.outboundLow = min(defaultLowMark, s.outboundHigh)
	}
	return s
}
