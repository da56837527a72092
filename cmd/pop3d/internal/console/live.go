package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/pop3svc/pop3svc/store"
)

// The live part of the console: counters that the server page refreshes by
// itself (a few lines of inline JavaScript poll GET /console/live.json),
// and charts of the last hour drawn as inline SVG from a ring buffer of
// samples that pop3d takes every HistoryInterval.

// History limits.
const (
	// HistoryInterval is the time between two samples of the charts.
	HistoryInterval = 10 * time.Second
	// HistoryLen is the number of samples kept: one hour.
	HistoryLen = int(time.Hour / HistoryInterval)
	// DefaultPollInterval is how often the server page asks for
	// live.json.
	DefaultPollInterval = 5 * time.Second
)

// Counters are the service's counters as the console shows them: gauges
// (Connections, LoggedIn) and totals since the start.
type Counters struct {
	Connections  int64  `json:"connections"`   // POP3 connections open
	LoggedIn     int64  `json:"logged_in"`     // POP3 sessions logged in
	LoginsOK     uint64 `json:"logins_ok"`     // successful logins since start
	LoginsFailed uint64 `json:"logins_failed"` // failed logins since start
	Retrieved    uint64 `json:"retrieved"`     // messages sent by RETR since start
	Deliveries   uint64 `json:"deliveries"`    // copies delivered to mailboxes since start
}

// MetricCounters reads Counters from pop3d's metrics (the series
// /metrics serves).
func MetricCounters() Counters {
	var c Counters
	for _, name := range metrics.ListMetricNames() {
		switch {
		case name == "pop3_connections_current":
			c.Connections = int64(metrics.GetOrCreateGauge(name, nil).Get())
		case name == "pop3_sessions_logged_in":
			c.LoggedIn = int64(metrics.GetOrCreateGauge(name, nil).Get())
		case name == "pop3_messages_retrieved_total":
			c.Retrieved = metrics.GetOrCreateCounter(name).Get()
		case name == `smtp_deliveries_total{result="delivered"}`:
			c.Deliveries = metrics.GetOrCreateCounter(name).Get()
		case strings.HasPrefix(name, "pop3_auth_total{"):
			switch {
			case strings.Contains(name, `result="ok"`):
				c.LoginsOK += metrics.GetOrCreateCounter(name).Get()
			case strings.Contains(name, `result="fail"`):
				c.LoginsFailed += metrics.GetOrCreateCounter(name).Get()
			}
		}
	}
	return c
}

// sample is one point of the charts: gauges as read, counters as the
// increase since the previous sample.
type sample struct {
	at                    time.Time
	connections, loggedIn int64
	loginsOK, loginsFail  uint64
	retrieved, delivered  uint64
	queued, badmail       int
}

// history is the ring buffer of the last HistoryLen samples.
type history struct {
	mu     sync.Mutex
	ring   [HistoryLen]sample
	n      int // samples held
	next   int // where the next one goes
	last   Counters
	primed bool // a sample was taken: last is the reference of the next increase
}

// record adds a sample from the counters read now.
func (h *history) record(now time.Time, c Counters, queued, badmail int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := sample{at: now, connections: c.Connections, loggedIn: c.LoggedIn, queued: queued, badmail: badmail}
	if h.primed {
		s.loginsOK = delta(c.LoginsOK, h.last.LoginsOK)
		s.loginsFail = delta(c.LoginsFailed, h.last.LoginsFailed)
		s.retrieved = delta(c.Retrieved, h.last.Retrieved)
		s.delivered = delta(c.Deliveries, h.last.Deliveries)
	}
	h.primed = true
	h.last = c
	h.ring[h.next] = s
	h.next = (h.next + 1) % HistoryLen
	if h.n < HistoryLen {
		h.n++
	}
}

func delta(now, before uint64) uint64 {
	if now < before {
		return 0
	}
	return now - before
}

// samples returns the samples held, oldest first.
func (h *history) samples() []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]sample, 0, h.n)
	start := (h.next - h.n + HistoryLen) % HistoryLen
	for i := range h.n {
		out = append(out, h.ring[(start+i)%HistoryLen])
	}
	return out
}

// Sample takes one sample of the charts now. Run calls it every
// HistoryInterval; tests call it directly.
func (c *Console) Sample() {
	q, b, err := c.opts.Queue.Depth()
	if err != nil {
		q, b = 0, 0
	}
	c.hist.record(time.Now(), c.opts.Counters(), q, b)
}

// Run samples the charts every HistoryInterval until ctx ends.
func (c *Console) Run(ctx context.Context) {
	c.Sample()
	t := time.NewTicker(HistoryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Sample()
		}
	}
}

// Chart geometry, in SVG user units.
const (
	chartW = 360
	chartH = 90
)

// chart is one chart of the server page: lines over the last hour.
type chart struct {
	ID    string      `json:"id"`
	Title string      `json:"title"`
	Max   float64     `json:"max"` // the value at the top edge
	Lines []chartLine `json:"lines"`
}

// chartLine is one line of a chart.
type chartLine struct {
	Name   string  `json:"name"`
	Points string  `json:"points"` // the polyline's points attribute
	Last   float64 `json:"last"`   // the newest value
}

// charts draws the five charts from the history.
func (c *Console) charts() []chart {
	s := c.hist.samples()
	pick := func(f func(sample) float64) []float64 {
		v := make([]float64, len(s))
		for i, x := range s {
			v[i] = f(x)
		}
		return v
	}
	type line struct {
		name string
		v    []float64
	}
	mk := func(id, title string, lines ...line) chart {
		ch := chart{ID: id, Title: title, Max: 1}
		for _, l := range lines {
			for _, x := range l.v {
				if x > ch.Max {
					ch.Max = x
				}
			}
		}
		ch.Max = niceCeil(ch.Max)
		for _, l := range lines {
			cl := chartLine{Name: l.name, Points: polyline(l.v, ch.Max)}
			if len(l.v) > 0 {
				cl.Last = l.v[len(l.v)-1]
			}
			ch.Lines = append(ch.Lines, cl)
		}
		return ch
	}
	return []chart{
		mk("sessions", "POP3 sessions",
			line{"connections", pick(func(x sample) float64 { return float64(x.connections) })},
			line{"logged in", pick(func(x sample) float64 { return float64(x.loggedIn) })}),
		mk("logins", "Logins per 10 s",
			line{"ok", pick(func(x sample) float64 { return float64(x.loginsOK) })},
			line{"failed", pick(func(x sample) float64 { return float64(x.loginsFail) })}),
		mk("retrieved", "Messages retrieved per 10 s",
			line{"RETR", pick(func(x sample) float64 { return float64(x.retrieved) })}),
		mk("deliveries", "Deliveries per 10 s",
			line{"delivered", pick(func(x sample) float64 { return float64(x.delivered) })}),
		mk("queue", "Queue depth",
			line{"queued", pick(func(x sample) float64 { return float64(x.queued) })},
			line{"Badmail", pick(func(x sample) float64 { return float64(x.badmail) })}),
	}
}

// polyline places the values right-aligned on the hour's width: the newest
// at the right edge, one HistoryInterval per step.
func polyline(v []float64, max float64) string {
	var b strings.Builder
	step := float64(chartW) / float64(HistoryLen-1)
	for i, x := range v {
		px := float64(chartW) - float64(len(v)-1-i)*step
		py := float64(chartH) - x/max*float64(chartH)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(px, 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(py, 'f', 1, 64))
	}
	return b.String()
}

// niceCeil rounds a chart's top up to 1, 2 or 5 times a power of ten.
func niceCeil(x float64) float64 {
	p := 1.0
	for p*10 <= x {
		p *= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// live is the answer of GET /console/live.json.
type live struct {
	Counters
	Uptime  string `json:"uptime"`
	Queued  int    `json:"queued"`
	Badmail int    `json:"badmail"`
	// Outbound is the depth of the outbound queue, when there is one.
	Outbound    int     `json:"outbound"`
	HasOutbound bool    `json:"-"`
	QueueErr    string  `json:"queue_error,omitempty"`
	Charts      []chart `json:"charts"`
}

func (c *Console) liveView() live {
	l := live{Counters: c.opts.Counters(), Uptime: time.Since(c.opts.Started).Round(time.Second).String(), Charts: c.charts()}
	q, b, err := c.opts.Queue.Depth()
	if err != nil {
		l.QueueErr = store.Reason(err)
	}
	l.Queued, l.Badmail = q, b
	if c.opts.Outbound != nil {
		l.HasOutbound = true
		n, _, err := c.opts.Outbound.Depth()
		if err != nil && l.QueueErr == "" {
			l.QueueErr = store.Reason(err)
		}
		l.Outbound = n
	}
	return l
}

func (c *Console) liveJSON(w http.ResponseWriter, _ *http.Request) {
	b, err := json.Marshal(c.liveView())
	if err != nil {
		http.Error(w, fmt.Sprintf("live.json: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
