package engine

import (
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics live in VictoriaMetrics' default set, which /metrics serves.
// Several engines in one process (tests) add to the same series.
var (
	mConnCurrent     = metrics.NewGauge("pop3_connections_current", nil)
	mConnTotal       = metrics.NewCounter("pop3_connections_total")
	mRefusedBacklog  = metrics.NewCounter(`pop3_connections_refused_total{reason="backlog_full"}`)
	mRefusedPerIP    = metrics.NewCounter(`pop3_connections_refused_total{reason="per_ip"}`)
	mRefusedTimeout  = metrics.NewCounter(`pop3_connections_refused_total{reason="backlog_timeout"}`)
	mRefusedDraining = metrics.NewCounter(`pop3_connections_refused_total{reason="shutting_down"}`)
	mRefusedPreIP    = metrics.NewCounter(`pop3_connections_refused_total{reason="prelogin_per_ip"}`)
	mRefusedPreNet   = metrics.NewCounter(`pop3_connections_refused_total{reason="prelogin_per_net"}`)
	mShed            = metrics.NewCounter("pop3_connections_shed_total")
	mLoginDeadline   = metrics.NewCounter("pop3_login_deadline_total")
	mPoolOverload    = metrics.NewCounter("pop3_pool_overload_total")
	mTasksQueued     = metrics.NewCounter("pop3_pool_queued_total")
	mBytesReceived   = metrics.NewCounter("pop3_bytes_received_total")
	mBytesSent       = metrics.NewCounter("pop3_bytes_sent_total")
	mIdleTimeouts    = metrics.NewCounter("pop3_idle_timeouts_total")
	mPanics          = metrics.NewCounter("pop3_panics_total")
	mInboundOverflow = metrics.NewCounter("pop3_inbound_overflow_total")
	mRenewals        = metrics.NewCounter("pop3_lock_renewals_total")
	// A streamed reply (RETR, TOP) pauses when the client reads slower
	// than it is sent and more than limits.outbound_high_mark octets wait
	// unsent, and resumes once they fall to limits.outbound_low_mark.
	mStreamPauses       = metrics.NewCounter("pop3_stream_pauses_total")
	mStreamResumes      = metrics.NewCounter("pop3_stream_resumes_total")
	mStreamSendfile     = metrics.NewCounter("pop3_stream_sendfile_total")
	mStreamSendfileBusy = metrics.NewCounter("pop3_stream_sendfile_busy_total")
	mStreamCopy         = metrics.NewCounter("pop3_stream_copy_total")
)

// servers are the running engines the gauges read from.
var servers sync.Map // *Server -> struct{}

func sumServers(f func(s *Server) int64) float64 {
	var n int64
	servers.Range(func(k, _ any) bool {
		n += f(k.(*Server))
		return true
	})
	return float64(n)
}

func init() {
	metrics.NewGauge(`pop3_sockets{state="in_use"}`, func() float64 {
		return sumServers(func(s *Server) int64 { return s.sockets.stats().InUse })
	})
	metrics.NewGauge(`pop3_sockets{state="waiting"}`, func() float64 {
		return sumServers(func(s *Server) int64 { return s.sockets.stats().Waiting })
	})
	metrics.NewGauge(`pop3_sockets{state="free"}`, func() float64 {
		return sumServers(func(s *Server) int64 { return s.sockets.stats().Free })
	})
	metrics.NewGauge("pop3_pool_running", func() float64 {
		return sumServers(func(s *Server) int64 { return int64(s.pool.Running()) })
	})
	metrics.NewGauge("pop3_pool_waiting", func() float64 {
		return sumServers(func(s *Server) int64 { return int64(s.pool.Waiting() + s.tasks.length()) })
	})
	metrics.NewGauge("pop3_pool_capacity", func() float64 {
		return sumServers(func(s *Server) int64 { return int64(s.pool.Cap()) })
	})
}

// connIDs numbers connections, unique in the process.
var connIDs atomic.Uint64
