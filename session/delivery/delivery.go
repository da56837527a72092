// Package delivery is the SMTP delivery service: it takes messages from the
// queue (store.Queue, on disk in store/queue) and puts a separate copy into each recipient's
// mailbox through the Mail Storage Access API (store.Delivery). A recipient
// over quota gets no copy and the sender gets a non-delivery report
// (RFC 3464, RFC 6522); a report that cannot be sent leaves the message in
// the Badmail folder with the reason beside it.
//
// The service is woken in-process by Notify when the SMTP service queues a
// message, and scans the whole queue at start and every QueueScan, which
// recovers after a crash and picks up files dropped by other processes.
// Temporary failures are retried with exponential backoff (RetryMin
// doubling up to RetryMax) and, after RetryFor, fail with status 5.4.7.
//
// Each copy starts with a Return-Path header (RFC 5321 §4.4) and an
// X-Pop3-Queue-Id header naming the queue entry, which is how a restarted
// service tells whether a copy landed before a crash (see store/queue).
//
// Metrics, on the global VictoriaMetrics set:
//
//	smtp_deliveries_total{result="delivered|deferred|failed"}
//	smtp_ndr_total                      reports queued locally or relayed
//	smtp_badmail_total                  messages moved to Badmail
//	smtp_queue_depth                    entries in the queue (last scan, kept current), reported
//	                                    by the queue's leader only (0 on the other servers
//	                                    sharing it), so that a sum over servers is the depth
//	smtp_queue_leader                   1 on the server that holds the queue's leader lock
//	smtp_delivery_latency_seconds       from queued to delivered, per copy
package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/pop3svc/pop3svc/store"
)

// Defaults of Options.
const (
	DefaultWorkers      = 8
	DefaultRetryMin     = 30 * time.Second
	DefaultRetryMax     = time.Hour
	DefaultRetryFor     = 48 * time.Hour
	DefaultQueueScan    = time.Minute
	DefaultRelayTimeout = 2 * time.Minute
	// notifyBuffer is how many queued ids wait for a worker before Notify
	// falls back to asking for a scan.
	notifyBuffer = 4096
	// MarkerHeader names the queue entry in every copy.
	MarkerHeader = "X-Pop3-Queue-Id"
	// maxMarkerScan is how many octets at the start of a message the
	// recovery check reads looking for the marker.
	maxMarkerScan = 4096
)

// Options configure the service.
type Options struct {
	Hostname     string        // Reporting-MTA and the NDR's From domain; empty: the host name
	Relay        string        // host:port to send reports to remote senders; empty: none
	RelayTimeout time.Duration // whole relay conversation; 0: DefaultRelayTimeout
	RetryFor     time.Duration // give up on temporary failures after this long; 0: DefaultRetryFor
	RetryMin     time.Duration // first backoff; 0: DefaultRetryMin
	RetryMax     time.Duration // backoff cap; 0: DefaultRetryMax
	QueueScan    time.Duration // periodic scan; 0: DefaultQueueScan
	Workers      int           // entries delivered at once; 0: DefaultWorkers
	Logger       *slog.Logger  // nil: discard
	// Transport, when set, makes the service the outbound delivery agent:
	// every recipient is sent to its domain through it rather than stored
	// in a mailbox (see outbound.go). Set at New; SetOptions keeps it.
	Transport Transport
	// Reports is the queue non-delivery reports go into, and
	// ReportNotify wakes the service that delivers from it; nil: the
	// service's own queue. The outbound agent's reports go into the mail
	// queue, to reach the sender's mailbox.
	Reports      store.Queue
	ReportNotify func(id string)
}

func (o Options) withDefaults() Options {
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
		if o.Hostname == "" {
			o.Hostname = "localhost"
		}
	}
	if o.RelayTimeout <= 0 {
		o.RelayTimeout = DefaultRelayTimeout
	}
	if o.RetryFor <= 0 {
		o.RetryFor = DefaultRetryFor
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.QueueScan <= 0 {
		o.QueueScan = DefaultQueueScan
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// counters are the metrics of one service: the local delivery service's
// (smtp_*) or the outbound delivery agent's (smtp_outbound_*).
type counters struct {
	delivered, deferred, failed, ndr, badmail, duplicates *metrics.Counter
	depth, leader                                         *metrics.Gauge
	latency                                               *metrics.PrometheusHistogram
}

func newCounters(prefix string) *counters {
	return &counters{
		delivered:  metrics.GetOrCreateCounter(prefix + `deliveries_total{result="delivered"}`),
		deferred:   metrics.GetOrCreateCounter(prefix + `deliveries_total{result="deferred"}`),
		failed:     metrics.GetOrCreateCounter(prefix + `deliveries_total{result="failed"}`),
		ndr:        metrics.GetOrCreateCounter(prefix + `ndr_total`),
		badmail:    metrics.GetOrCreateCounter(prefix + `badmail_total`),
		duplicates: metrics.GetOrCreateCounter(prefix + `possible_duplicates_total`),
		depth:      metrics.GetOrCreateGauge(prefix+`queue_depth`, nil),
		leader:     metrics.GetOrCreateGauge(prefix+`queue_leader`, nil),
		latency:    metrics.GetOrCreatePrometheusHistogramExt(prefix+`delivery_latency_seconds`, latencyBuckets),
	}
}

var (
	localCounters    = newCounters("smtp_")
	outboundCounters = newCounters("smtp_outbound_")
)

// latencyBuckets are the upper bounds of smtp_delivery_latency_seconds:
// from an immediate delivery to one retried for a day.
var latencyBuckets = []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600}

type retryState struct {
	attempts int
	next     time.Time
	timer    *time.Timer
}

// Service is the delivery service.
type Service struct {
	m     *counters
	st    store.Store
	q     store.Queue
	opts  atomic.Pointer[Options]
	token string // this service's attempts in progress logs

	work chan string
	wake chan struct{}
	stop chan struct{}

	mu      sync.Mutex
	pending map[string]bool // waiting in work or being delivered
	retry   map[string]*retryState
	depth   map[string]bool // entries known to be queued
	// recheck holds the entries for which Deliver failed with a temporary
	// error in this process: the copy may have landed all the same (an
	// error after the message was linked into the mailbox), so the retry
	// looks for it first, as after a crash.
	recheck map[string]bool
	stopped bool
	leader  bool // holds the queue's leader lock: reports the depth

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// idle is signalled whenever a worker finishes an entry (tests).
	idle chan struct{}
}

// New makes a service; Start runs it.
func New(st store.Store, q store.Queue, opts Options) *Service {
	var b [8]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	s := &Service{
		st:      st,
		q:       q,
		token:   fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		work:    make(chan string, notifyBuffer),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		pending: make(map[string]bool),
		retry:   make(map[string]*retryState),
		depth:   make(map[string]bool),
		recheck: make(map[string]bool),
		idle:    make(chan struct{}, 1),
	}
	o := opts.withDefaults()
	s.opts.Store(&o)
	s.m = localCounters
	if o.Transport != nil {
		s.m = outboundCounters
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// SetOptions applies changed options (SIGHUP). Workers changes apply at
// the next Start.
func (s *Service) SetOptions(opts Options) {
	o := opts.withDefaults()
	o.Transport = s.o().Transport
	s.opts.Store(&o)
	s.requestScan()
}

func (s *Service) o() *Options { return s.opts.Load() }

// Queue returns the queue the service delivers from.
func (s *Service) Queue() store.Queue { return s.q }

// Start launches the workers and the scanner, which scans the queue at once.
func (s *Service) Start() {
	n := s.o().Workers
	for i := 0; i < n; i++ {
		s.wg.Add(1)
		go s.worker()
	}
	s.wg.Add(1)
	go s.scanner()
	s.requestScan()
}

// Stop stops taking new work, lets the entries being delivered finish
// until ctx ends, then cancels them (a cancelled delivery stores nothing
// and is retried at the next start).
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	for _, r := range s.retry {
		if r.timer != nil {
			r.timer.Stop()
		}
	}
	s.mu.Unlock()
	close(s.stop)
	s.mu.Lock()
	leader := s.leader
	s.mu.Unlock()
	if ql, ok := s.q.(store.QueueLeader); ok && leader {
		ql.Release()
		s.m.leader.Set(0)
		s.m.depth.Set(0)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return fmt.Errorf("delivery service stopped before its deliveries finished: %w", ctx.Err())
	}
}

// setDepth publishes the queue depth, on the leader only; s.mu is held.
func (s *Service) setDepth() {
	if s.leader {
		s.m.depth.Set(float64(len(s.depth)))
	}
}

// Notify tells the service that an entry was queued. It never blocks.
func (s *Service) Notify(id string) {
	s.mu.Lock()
	if !s.depth[id] {
		s.depth[id] = true
		s.setDepth()
	}
	s.mu.Unlock()
	s.dispatch(id, false)
}

func (s *Service) requestScan() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dispatch hands an entry to the workers unless it is already pending or
// waiting out a backoff. block: wait for room (the scanner), else fall
// back to a later scan.
func (s *Service) dispatch(id string, block bool) {
	s.mu.Lock()
	if s.stopped || s.pending[id] {
		s.mu.Unlock()
		return
	}
	if r := s.retry[id]; r != nil && time.Now().Before(r.next) {
		s.mu.Unlock()
		return
	}
	s.pending[id] = true
	s.mu.Unlock()
	if block {
		select {
		case s.work <- id:
		case <-s.stop:
			s.unpend(id)
		}
		return
	}
	select {
	case s.work <- id:
	default:
		s.unpend(id)
		s.requestScan()
	}
}

func (s *Service) unpend(id string) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

func (s *Service) scanner() {
	defer s.wg.Done()
	t := time.NewTimer(s.o().QueueScan)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-t.C:
		}
		s.scan()
		t.Reset(s.o().QueueScan)
	}
}

// scan lists the queue and dispatches every entry not pending or backing off.
func (s *Service) scan() {
	ids, err := s.q.List()
	if err != nil {
		s.o().Logger.Error("cannot scan the mail queue", "err", err)
		return
	}
	s.q.Clean(time.Now())
	// Without leader election every server reports the depth.
	leader := true
	if ql, ok := s.q.(store.QueueLeader); ok {
		leader = ql.Leader()
	}
	if leader {
		s.m.leader.Set(1)
	}
	s.mu.Lock()
	s.leader = leader
	s.depth = make(map[string]bool, len(ids))
	for _, id := range ids {
		s.depth[id] = true
	}
	s.setDepth()
	s.mu.Unlock()
	for _, id := range ids {
		s.dispatch(id, true)
	}
}

func (s *Service) worker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case id := <-s.work:
			s.process(id)
			s.unpend(id)
			select {
			case s.idle <- struct{}{}:
			default:
			}
		}
	}
}

// removed forgets an entry that left the queue.
func (s *Service) removed(id string) {
	s.mu.Lock()
	if r := s.retry[id]; r != nil && r.timer != nil {
		r.timer.Stop()
	}
	delete(s.retry, id)
	delete(s.depth, id)
	delete(s.recheck, id)
	s.setDepth()
	s.mu.Unlock()
}

// postpone schedules the entry's next attempt with exponential backoff
// counted over every server's attempts, and records the time in the entry
// so that other servers sharing the queue wait for it too.
func (s *Service) postpone(e store.QueueEntry) time.Duration {
	sch, ok := e.(store.QueueSchedule)
	if !ok {
		return s.deferEntry(e.ID()) // a queue without a shared schedule
	}
	o := s.o()
	_, attempts := sch.NextAttempt()
	attempts++
	d := o.RetryMin
	for i := 1; i < attempts && d < o.RetryMax; i++ {
		d *= 2
	}
	if d > o.RetryMax {
		d = o.RetryMax
	}
	next := time.Now().Add(d)
	if err := sch.Postpone(next, attempts); err != nil {
		o.Logger.Warn("cannot record the next attempt in the queue entry", "queue_id", e.ID(), "err", err)
	}
	s.schedule(e.ID(), next)
	return d
}

// schedule dispatches the entry again at next.
func (s *Service) schedule(id string, next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	r := s.retry[id]
	if r == nil {
		r = &retryState{}
		s.retry[id] = r
	}
	r.next = next
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = time.AfterFunc(time.Until(next), func() { s.dispatch(id, false) })
}

// deferEntry schedules another attempt with exponential backoff.
func (s *Service) deferEntry(id string) time.Duration {
	o := s.o()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return 0
	}
	r := s.retry[id]
	if r == nil {
		r = &retryState{}
		s.retry[id] = r
	}
	r.attempts++
	d := o.RetryMin
	for i := 1; i < r.attempts && d < o.RetryMax; i++ {
		d *= 2
	}
	if d > o.RetryMax {
		d = o.RetryMax
	}
	r.next = time.Now().Add(d)
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = time.AfterFunc(d, func() { s.dispatch(id, false) })
	return d
}

// Retry forgets the entry's backoff and hands it to a worker now (pop3ctl
// queue retry through the admin API, after store.RetryQueueEntry made it
// due in the entry itself).
func (s *Service) Retry(id string) {
	s.mu.Lock()
	if r := s.retry[id]; r != nil {
		if r.timer != nil {
			r.timer.Stop()
		}
		delete(s.retry, id)
	}
	s.mu.Unlock()
	s.dispatch(id, false)
}

// WaitIdle waits until the queue is empty or ctx ends (tests and benchmarks).
func (s *Service) WaitIdle(ctx context.Context) error {
	for {
		ids, err := s.q.List()
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("queue still holds %d entries: %w", len(ids), ctx.Err())
		case <-s.idle:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// permanent maps a store error to an RFC 3463 status when it is a
// permanent failure for the recipient; "" means temporary.
func permanent(err error) (status, reason string) {
	switch {
	case errors.Is(err, store.ErrOverQuota):
		return "5.2.2", "mailbox full: the message would exceed the mailbox quota"
	case errors.Is(err, store.ErrNoSuchMailbox):
		return "5.1.1", "no such mailbox"
	case errors.Is(err, store.ErrNoSuchDomain):
		return "5.1.2", "no such domain"
	case errors.Is(err, store.ErrInvalidName):
		return "5.1.3", "bad recipient address syntax"
	case errors.Is(err, store.ErrMessageTooLarge):
		return "5.3.4", "message too big for the mail store"
	}
	return "", ""
}
