package auth

import (
	"fmt"
	"net"
	"net/netip"
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
	// Workers is the most checks that run at once; 0: one per core
	// (GOMAXPROCS).
	Workers int
	// Memory is the memory budget of the checks running at once, in
	// octets: a check starts only while the memory its hash needs fits in
	// what the running ones left (one check always runs, whatever its
	// cost). 0: no budget.
	Memory int64
	// SuspectWorkers is the most Suspect checks that run at once; 0: half
	// of Workers, rounded up. During a flood of wrong passwords the
	// other slots stay free for the checks of everyone else, which then
	// start at once instead of after a flood check.
	SuspectWorkers int
	// SuspectApart gives the Suspect checks slots of their own: up to
	// SuspectWorkers of them run beside up to Workers others. For hashes
	// that run at a low priority (store.WithLowPriority in worker
	// processes at a high nice value): a suspect check then takes only
	// CPU nothing else wants, and may take long, so it must not hold a
	// slot the others need.
	SuspectApart bool
	// Length is the most checks of one class that wait for a slot;
	// beyond it Submit fails at once. The two classes (see Submit) have
	// a Length each.
	Length int
	// GCRoom, when positive, keeps an allocation of that many octets
	// that is never touched (so it takes address space, not memory) for
	// the queue's life. Every check's hash memory (19 MiB for argon2id by
	// default) is garbage as soon as it ends; without the room, the
	// collector, which runs each time the heap doubles, would run after
	// every check or two when the live heap is small, each time stopping
	// every thread. With it, it runs about once per GCRoom octets of
	// hashes, and the process holds at most about GCRoom more of freed
	// hash memory (see README, memory bound). For the service's queue
	// only.
	GCRoom int64
}

// HashQueue is the auth queue: plaintext password checks, each a slow hash
// (argon2id, bcrypt, SHA-512-crypt, a PAM or directory call), run here on
// goroutines of their own, never on the engine's command workers, so that
// a flood of password guesses cannot starve logged-in sessions. At most
// Workers checks run at once, and fewer when their memory would exceed the
// budget: with argon2id at m MiB, min(Workers, Memory/m) run. Up to Length
// more wait; beyond that a check is refused at once.
//
// The waiting checks stand in three lines by the Standing of the client's
// address, and a line moves only while the lines before it are empty:
// checks from networks with a recent successful login (Trusted) first,
// then from addresses and networks the service knows nothing against
// (Unknown), then from Suspect ones (recent failed logins from the address
// or its network). A flood of wrong passwords delays the other suspects,
// not the logins of addresses and networks that have not failed. Each line
// holds up to Length checks.
//
// Within a line, the checks wait per network (Check.Net: an IPv4 /24, an
// IPv6 /48) and the networks take turns, one check each: a network with
// many checks waiting holds back its own, while a check from a network
// with few waits for at most one check of each other network. When a line
// is full, a check from a network that holds fewer of its places than the
// network holding the most takes the place of that network's newest check,
// which is refused at once (Check.Refused); so one network cannot hold
// more than its share of a full line while others wait. Demote moves a
// network's waiting checks to the Suspect line when it turns suspect.
//
// It is safe for concurrent use; SetOptions applies changed settings live
// (running checks finish; the new bounds apply to the next ones).
type HashQueue struct {
	mu       sync.Mutex
	opt      QueueOptions
	running  int
	suspects int // of them Suspect
	used     int64
	lines    [nLines]hashLine // in the order they move: Trusted, Unknown, Suspect

	started atomic.Uint64 // checks started, for tests and the admin API
	room    []byte        // GCRoom, guarded by mu
}

// Standing is what the service knows of a client's address, which decides
// the line its password checks wait in (see HashQueue).
type Standing int

// The standings.
const (
	Unknown Standing = iota // nothing known for or against it
	Trusted                 // its network logged in lately, and neither it nor its network failed lately
	Suspect                 // the address, or enough of its network, failed lately
)

// The lines, in the order they move.
const (
	lineTrusted = iota
	lineUnknown
	lineSuspect
	nLines
)

// line returns the index of the line checks of standing s wait in.
func (s Standing) line() int {
	switch s {
	case Trusted:
		return lineTrusted
	case Suspect:
		return lineSuspect
	}
	return lineUnknown
}

func (s Standing) String() string {
	switch s {
	case Trusted:
		return "trusted"
	case Unknown:
		return "unknown"
	case Suspect:
		return "suspect"
	}
	return fmt.Sprintf("Standing(%d)", int(s))
}

// Check is one password check submitted to the queue.
type Check struct {
	// Cost is the memory the check's hash takes, charged in the budget.
	Cost int64
	// Net is the client's network (see Network); checks of one network
	// share a turn. "": all such checks are one network.
	Net string
	// Standing chooses the check's line (see HashQueue).
	Standing Standing
	// Run is the check; it runs on a goroutine of the queue. low: the
	// check runs from the Suspect line, and its hash should run at low
	// priority (store.WithLowPriority), taking only the CPU nothing else
	// wants.
	Run func(low bool)
	// Done, if not nil, is called once Run has returned and its slot is
	// free again: a check that answers its client here, rather than at
	// the end of Run, lets the client's next attempt find the slot it
	// held free.
	Done func()
	// Refused, if not nil, is called when the waiting check loses its
	// place to a check of a network holding fewer places (see HashQueue):
	// the check will not run, and its client must be told at once. It is
	// called on the submitting goroutine of the other check and must not
	// block. A check submitted without it is never pushed out.
	Refused func()
}

type hashJob struct {
	suspect bool
	cost    int64
	run     func(low bool)
	done    func()
	refused func()
}

// netLine is one network's waiting checks in a line: jobs[head:].
type netLine struct {
	key  string
	jobs []hashJob
	head int
}

func (n *netLine) len() int { return len(n.jobs) - n.head }

// hashLine is one line of waiting checks: per network FIFOs, served in
// turn (ring[next] goes first).
type hashLine struct {
	nets map[string]*netLine
	ring []*netLine // networks with checks waiting, in turn order
	next int
	n    int // checks waiting
}

func (l *hashLine) len() int { return l.n }

// push appends a job to net's FIFO; a network new to the line takes its
// turn after every network already waiting.
func (l *hashLine) push(net string, j hashJob) {
	if l.nets == nil {
		l.nets = make(map[string]*netLine)
	}
	nl := l.nets[net]
	if nl == nil {
		nl = &netLine{key: net}
		l.nets[net] = nl
		// Insert just before the one whose turn is next: last in turn.
		l.ring = append(l.ring, nil)
		copy(l.ring[l.next+1:], l.ring[l.next:])
		l.ring[l.next] = nl
		l.next++
		if l.next == len(l.ring) {
			l.next = 0
		}
	}
	nl.jobs = append(nl.jobs, j)
	l.n++
}

// peek returns the job whose turn is next; the caller checked len() > 0.
func (l *hashLine) peek() hashJob {
	nl := l.ring[l.next]
	return nl.jobs[nl.head]
}

// pop removes the job whose turn is next and passes the turn on; the
// caller checked len() > 0.
func (l *hashLine) pop() hashJob {
	nl := l.ring[l.next]
	j := nl.jobs[nl.head]
	nl.jobs[nl.head] = hashJob{}
	nl.head++
	l.n--
	if nl.len() == 0 {
		l.drop(l.next)
		return j
	}
	if nl.head > 64 && nl.head*2 > len(nl.jobs) {
		k := copy(nl.jobs, nl.jobs[nl.head:])
		clear(nl.jobs[k:])
		nl.jobs, nl.head = nl.jobs[:k], 0
	}
	l.next = (l.next + 1) % len(l.ring)
	return j
}

// drop removes the network at ring index i (its FIFO is empty or taken).
func (l *hashLine) drop(i int) {
	delete(l.nets, l.ring[i].key)
	l.ring = append(l.ring[:i], l.ring[i+1:]...)
	if i < l.next {
		l.next--
	}
	if l.next >= len(l.ring) {
		l.next = 0
	}
}

// count returns how many checks of net wait in the line.
func (l *hashLine) count(net string) int {
	if nl := l.nets[net]; nl != nil {
		return nl.len()
	}
	return 0
}

// pushOut removes the newest pushable job of the network holding the most
// places, if it holds at least two more than own; it returns that job.
func (l *hashLine) pushOut(own int) (hashJob, bool) {
	bi := -1
	for i, nl := range l.ring {
		if nl.len() >= own+2 && (bi < 0 || nl.len() > l.ring[bi].len()) {
			bi = i
		}
	}
	if bi < 0 {
		return hashJob{}, false
	}
	nl := l.ring[bi]
	for k := len(nl.jobs) - 1; k >= nl.head; k-- {
		if j := nl.jobs[k]; j.refused != nil {
			copy(nl.jobs[k:], nl.jobs[k+1:])
			nl.jobs[len(nl.jobs)-1] = hashJob{}
			nl.jobs = nl.jobs[:len(nl.jobs)-1]
			l.n--
			if nl.len() == 0 {
				l.drop(bi)
			}
			return j, true
		}
	}
	return hashJob{}, false
}

// take removes and returns every job of net.
func (l *hashLine) take(net string) []hashJob {
	nl := l.nets[net]
	if nl == nil {
		return nil
	}
	for i, r := range l.ring {
		if r == nl {
			l.drop(i)
			break
		}
	}
	jobs := nl.jobs[nl.head:]
	l.n -= len(jobs)
	return jobs
}

var (
	mQueueRefused = metrics.NewCounter("pop3_auth_queue_refused_total")
	mQueueChecks  = metrics.NewCounter("pop3_auth_queue_checks_total")
	mQueuePanics  = metrics.NewCounter("pop3_auth_queue_panics_total")
	// mQueuePushedOut counts waiting checks that lost their place to a
	// check of a network holding fewer places (also in refused_total).
	mQueuePushedOut = metrics.NewCounter("pop3_auth_queue_pushed_out_total")

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

// Network returns the network a remote address belongs to for the auth
// queue's turns and the guard's network failures: its IPv4 /24 or IPv6 /48
// prefix, the networks the socket pool sheds by. A "host:port" is accepted;
// anything unparsable is its own network.
func Network(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		remote = h
	}
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return remote
	}
	a = a.Unmap().WithZone("")
	bits := 24
	if a.Is6() {
		bits = 48
	}
	p, _ := a.Prefix(bits)
	return p.String()
}

func currentQueue() *HashQueue {
	liveQueueMu.Lock()
	defer liveQueueMu.Unlock()
	return liveQueue
}

// NewHashQueue returns a queue with the given options. The last queue made
// is the one the pop3_auth_queue_* gauges show.
func NewHashQueue(opt QueueOptions) *HashQueue {
	q := &HashQueue{opt: normalQueue(opt)}
	q.setRoom()
	liveQueueMu.Lock()
	liveQueue = q
	liveQueueMu.Unlock()
	return q
}

func normalQueue(opt QueueOptions) QueueOptions {
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.SuspectWorkers <= 0 || opt.SuspectWorkers > opt.Workers && !opt.SuspectApart {
		opt.SuspectWorkers = (opt.Workers + 1) / 2
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
	q.setRoom()
	for _, j := range start {
		q.launch(j)
	}
}

// setRoom applies GCRoom.
func (q *HashQueue) setRoom() {
	q.mu.Lock()
	switch opt := q.opt; {
	case opt.GCRoom <= 0:
		q.room = nil
	case int64(len(q.room)) != opt.GCRoom:
		q.room = make([]byte, opt.GCRoom)
	}
	q.mu.Unlock()
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
	for i := range q.lines {
		waiting += q.lines[i].len()
	}
	return q.running, waiting
}

// Started returns how many checks have started since the queue was made.
func (q *HashQueue) Started() uint64 { return q.started.Load() }

// Submit runs f on a goroutine of the queue once a slot with cost octets of
// the memory budget is free, or fails at once with ErrQueueFull when Length
// checks of its class already wait. suspect: the check is for an address
// with recent failed logins, and waits behind every check that is not. It
// never blocks. It is Enqueue of a Check without a network, Unknown or
// Suspect.
func (q *HashQueue) Submit(cost int64, suspect bool, f func(low bool)) error {
	st := Unknown
	if suspect {
		st = Suspect
	}
	return q.Enqueue(Check{Cost: cost, Standing: st, Run: f})
}

// Enqueue runs c.Run on a goroutine of the queue once a slot with c.Cost
// octets of the memory budget is free and its network's turn has come.
// When Length checks of its line already wait, it takes the place of the
// newest check of the network holding the most places if that network
// holds at least two more than c's (that check's Refused is called), and
// otherwise fails at once with ErrQueueFull. It never blocks.
func (q *HashQueue) Enqueue(c Check) error {
	class := c.Standing.line()
	job := hashJob{suspect: class == lineSuspect, cost: c.Cost, run: c.Run, done: c.Done, refused: c.Refused}
	q.mu.Lock()
	ahead := 0
	for i := q.firstAhead(class); i <= class; i++ {
		ahead += q.lines[i].len()
	}
	if ahead == 0 && q.fitsLocked(job) {
		q.startLocked(job)
		q.mu.Unlock()
		q.launch(job)
		return nil
	}
	l := &q.lines[class]
	var out hashJob
	if l.len() >= q.opt.Length {
		var ok bool
		if out, ok = l.pushOut(l.count(c.Net)); !ok {
			q.mu.Unlock()
			mQueueRefused.Inc()
			return ErrQueueFull
		}
	}
	l.push(c.Net, job)
	q.mu.Unlock()
	if out.refused != nil {
		mQueueRefused.Inc()
		mQueuePushedOut.Inc()
		out.refused()
	}
	return nil
}

// Demote moves the checks of net waiting in the Trusted and Unknown lines
// to the end of its place in the Suspect line, for a network that has
// just turned suspect: they no longer hold back the checks of networks
// that have not failed.
func (q *HashQueue) Demote(net string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for c := 0; c < lineSuspect; c++ {
		for _, j := range q.lines[c].take(net) {
			j.suspect = true
			q.lines[lineSuspect].push(net, j)
		}
	}
}

// Waiting returns how many checks of net wait in the line of st.
func (q *HashQueue) Waiting(net string, st Standing) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lines[st.line()].count(net)
}

// fitsLocked reports whether j may start now.
func (q *HashQueue) fitsLocked(j hashJob) bool {
	switch {
	case j.suspect && q.suspects >= q.opt.SuspectWorkers:
		return false
	case q.opt.SuspectApart && !j.suspect && q.running-q.suspects >= q.opt.Workers:
		return false
	case !q.opt.SuspectApart && q.running >= q.opt.Workers:
		return false
	}
	return q.running == 0 || q.opt.Memory == 0 || q.used+j.cost <= q.opt.Memory
}

// startLocked counts j as running.
func (q *HashQueue) startLocked(j hashJob) {
	q.running++
	q.used += j.cost
	if j.suspect {
		q.suspects++
	}
}

// admitLocked takes the waiting checks that may start now, in order: each
// line once the lines before it are empty, its networks in turn.
//
// With SuspectApart the Suspect line has slots of its own and moves
// whatever waits before it.
func (q *HashQueue) admitLocked() []hashJob {
	var out []hashJob
	take := func(l *hashLine) bool {
		for l.len() > 0 && q.fitsLocked(l.peek()) {
			j := l.pop()
			q.startLocked(j)
			out = append(out, j)
		}
		return l.len() == 0
	}
	for c := range q.lines {
		if c == lineSuspect && q.opt.SuspectApart {
			break
		}
		if !take(&q.lines[c]) {
			break // the next of this line waits for a slot: nothing behind it goes first
		}
	}
	if q.opt.SuspectApart {
		take(&q.lines[lineSuspect])
	}
	return out
}

// firstAhead is the first line whose waiting checks go before a check
// of line class.
func (q *HashQueue) firstAhead(class int) int {
	if class == lineSuspect && q.opt.SuspectApart {
		return lineSuspect
	}
	return 0
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
		if j.suspect {
			q.suspects--
		}
		start := q.admitLocked()
		q.mu.Unlock()
		for _, n := range start {
			q.launch(n)
		}
		if j.done != nil {
			j.done()
		}
	}()
	defer func() {
		// A check must not take the process down; the caller's own
		// recover (the session's) answers its client.
		if v := recover(); v != nil {
			mQueuePanics.Inc()
		}
	}()
	j.run(j.suspect)
}
