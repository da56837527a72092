package auth

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// ErrQueueFull is returned by HashQueue.Submit when every password check
// slot is taken and the queue holds its full length. It wraps
// ErrUnavailable: the client gets a temporary failure ([SYS/TEMP]) at once.
var ErrQueueFull = fmt.Errorf("%w: the password check queue is full", ErrUnavailable)

// QueueOptions size the auth queue (the [auth] settings hash_workers,
// hash_memory and queue).
type QueueOptions struct {
	// Workers is the most checks that run at once; 0: GOMAXPROCS.
	Workers int
	// Memory is the memory budget of the checks running at once, in
	// octets: a check starts only while the memory its hash needs fits in
	// what the running ones left (one check always runs, whatever its
	// cost). 0: no budget.
	Memory int64
	// Length is the most checks of one class that wait for a slot;
	// beyond it Submit fails at once. The two classes (see Submit) have
	// a Length each.
	Length int
}

// HashQueue is the auth queue: plaintext password checks, each a slow hash
// (argon2id, bcrypt, SHA-512-crypt, a PAM or directory call), run here on
// goroutines of their own, never on the engine's command workers, so that
// a flood of password guesses cannot starve logged-in sessions. At most
// Workers checks run at once, and fewer when their memory would exceed the
// budget: with argon2id at m MiB, min(Workers, Memory/m) run. Up to Length
// more wait in order; beyond that a check is refused at once.
//
// Checks for addresses with recent failed logins (suspect) wait in a
// second line, which moves only while the first is empty: a flood of wrong
// passwords from many addresses delays the other suspects, not the logins
// of addresses that have not failed. Each line holds up to Length checks.
//
// It is safe for concurrent use; SetOptions applies changed settings live
// (running checks finish; the new bounds apply to the next ones).
type HashQueue struct {
	mu      sync.Mutex
	opt     QueueOptions
	running int
	used    int64
	lines   [2]hashLine // [0] addresses without recent failures, [1] suspect

	started atomic.Uint64 // checks started, for tests and the admin API
}

type hashJob struct {
	cost int64
	run  func()
}

// hashLine is a FIFO of waiting checks: wait[head:].
type hashLine struct {
	wait []hashJob
	head int
}

func (l *hashLine) len() int { return len(l.wait) - l.head }

// pop removes the first job; the caller checked len() > 0.
func (l *hashLine) pop() hashJob {
	j := l.wait[l.head]
	l.wait[l.head] = hashJob{}
	l.head++
	if l.head == len(l.wait) {
		l.wait, l.head = l.wait[:0], 0
	} else if l.head > 1024 && l.head*2 > len(l.wait) {
		n := copy(l.wait, l.wait[l.head:])
		clear(l.wait[n:])
		l.wait, l.head = l.wait[:n], 0
	}
	return j
}

var (
	mQueueRefused = metrics.NewCounter("pop3_auth_queue_refused_total")
	mQueueChecks  = metrics.NewCounter("pop3_auth_queue_checks_total")
	mQueuePanics  = metrics.NewCounter("pop3_auth_queue_panics_total")

	liveQueueMu sync.Mutex
	liveQueue   *HashQueue // the service's queue, for the gauges
	_           = metrics.NewGauge("pop3_auth_queue_running", func() float64 {
		if q := currentQueue(); q != nil {
			r, _ := q.Len()
			return float64(r)
		}
		return 0
	})
	_ = metrics.NewGauge("pop3_auth_queue_waiting", func() float64 {
		if q := currentQueue(); q != nil {
			_, w := q.Len()
			return float64(w)
		}
		return 0
	})
)

func currentQueue() *HashQueue {
	liveQueueMu.Lock()
	defer liveQueueMu.Unlock()
	return liveQueue
}

// NewHashQueue returns a queue with the given options. The last queue made
// is the one the pop3_auth_queue_* gauges show.
func NewHashQueue(opt QueueOptions) *HashQueue {
	q := &HashQueue{opt: normalQueue(opt)}
	liveQueueMu.Lock()
	liveQueue = q
	liveQueueMu.Unlock()
	return q
}

func normalQueue(opt QueueOptions) QueueOptions {
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.Memory < 0 {
		opt.Memory = 0
	}
	if opt.Length < 0 {
		opt.Length = 0
	}
	return opt
}

// SetOptions changes the bounds; checks already running or waiting keep
// their place.
func (q *HashQueue) SetOptions(opt QueueOptions) {
	q.mu.Lock()
	q.opt = normalQueue(opt)
	start := q.admitLocked()
	q.mu.Unlock()
	for _, j := range start {
		q.launch(j)
	}
}

// Options returns the options in force (Workers resolved).
func (q *HashQueue) Options() QueueOptions {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.opt
}

// Len returns the checks running and waiting now.
func (q *HashQueue) Len() (running, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, q.lines[0].len() + q.lines[1].len()
}

// Started returns how many checks have started since the queue was made.
func (q *HashQueue) Started() uint64 { return q.started.Load() }

// Submit runs f on a goroutine of the queue once a slot with cost octets of
// the memory budget is free, or fails at once with ErrQueueFull when Length
// checks of its class already wait. suspect: the check is for an address
// with recent failed logins, and waits behind every check that is not. It
// never blocks.
func (q *HashQueue) Submit(cost int64, suspect bool, f func()) error {
	class := 0
	if suspect {
		class = 1
	}
	q.mu.Lock()
	ahead := q.lines[0].len()
	if suspect {
		ahead += q.lines[1].len()
	}
	if ahead == 0 && q.fitsLocked(cost) {
		q.running++
		q.used += cost
		q.mu.Unlock()
		q.launch(hashJob{cost: cost, run: f})
		return nil
	}
	l := &q.lines[class]
	if l.len() >= q.opt.Length {
		q.mu.Unlock()
		mQueueRefused.Inc()
		return ErrQueueFull
	}
	l.wait = append(l.wait, hashJob{cost: cost, run: f})
	q.mu.Unlock()
	return nil
}

// fitsLocked reports whether a check of cost may start now.
func (q *HashQueue) fitsLocked(cost int64) bool {
	if q.running >= q.opt.Workers {
		return false
	}
	return q.running == 0 || q.opt.Memory == 0 || q.used+cost <= q.opt.Memory
}

// admitLocked takes the waiting checks that may start now, in order: the
// first line, then the suspect line once the first is empty.
func (q *HashQueue) admitLocked() []hashJob {
	var out []hashJob
	for c := range q.lines {
		l := &q.lines[c]
		for l.len() > 0 && q.fitsLocked(l.wait[l.head].cost) {
			j := l.pop()
			q.running++
			q.used += j.cost
			out = append(out, j)
		}
		if l.len() > 0 {
			break // the next of this line waits for a slot: nothing behind it goes first
		}
	}
	return out
}

func (q *HashQueue) launch(j hashJob) {
	q.started.Add(1)
	mQueueChecks.Inc()
	go q.run(j)
}

// run runs one check and then starts the waiting ones that fit.
func (q *HashQueue) run(j hashJob) {
	defer func() {
		q.mu.Lock()
		q.running--
		q.used -= j.cost
		start := q.admitLocked()
		q.mu.Unlock()
		for _, n := range start {
			q.launch(n)
		}
	}()
	defer func() {
		// A check must not take the process down; the caller's own
		// recover (the session's) answers its client.
		if v := recover(); v != nil {
			mQueuePanics.Inc()
		}
	}()
	j.run()
}
