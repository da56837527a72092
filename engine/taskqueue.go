package engine

import (
	"errors"
	"runtime/debug"
	"sync"
	"time"

	"github.com/panjf2000/ants/v2"
)

// taskQueue holds the tasks that found every worker busy, up to
// pop3.task_queue of them, so that a burst a little larger than
// pop3.threadcount waits its turn instead of being refused; only beyond
// the queue does a command get "-ERR [SYS/TEMP] server busy". The event
// loop never waits: submit either hands the task to ants, queues it, or
// fails at once.
//
// Every task runs inside runTasks, which after its task takes queued ones
// until the queue is empty. A task is queued only while at least one
// runTasks is active (active > 0, checked under mu), and an active
// runTasks leaves only after seeing the queue empty under mu, so nothing
// queued is ever stranded. A runTasks on its way to a worker that is
// returning to ants' pool (startRunner) counts as active too.
type taskQueue struct {
	mu     sync.Mutex
	tasks  []func() // FIFO: tasks[head:]
	head   int
	max    int
	active int // runTasks calls submitted and not yet finished
}

// length is the number of queued tasks.
func (q *taskQueue) length() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.tasks) - q.head
}

func (q *taskQueue) setMax(n int) {
	q.mu.Lock()
	q.max = n
	q.mu.Unlock()
}

// submit runs f on the worker pool, or queues it when every worker is
// busy and the queue has room. It returns ants.ErrPoolOverload when it
// can do neither.
func (s *Server) submit(f func()) error {
	q := &s.tasks
	q.mu.Lock()
	q.active++
	q.mu.Unlock()
	err := s.pool.Submit(func() { s.runTasks(f) })
	if err == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if errors.Is(err, ants.ErrPoolOverload) && q.active == 1 {
		// No runTasks is running, yet ants has no worker free: one whose
		// runTasks just ended (its last reply already posted, so the next
		// pipelined command comes at once) is on its way back into the
		// pool. The pool is not busy: the task waits for that worker,
		// even with no room in the queue, and the active count stays
		// for the runTasks startRunner submits.
		q.tasks = append(q.tasks, f)
		mTasksQueued.Inc()
		go s.startRunner()
		return nil
	}
	q.active--
	if !errors.Is(err, ants.ErrPoolOverload) || q.active == 0 || len(q.tasks)-q.head >= q.max {
		return err
	}
	q.tasks = append(q.tasks, f)
	mTasksQueued.Inc()
	return nil
}

// Timing of startRunner.
const (
	runnerRetry = 20 * time.Microsecond // between its tries
	runnerWait  = time.Second           // before it runs the tasks itself
)

// startRunner submits a runTasks for the queued tasks once ants has a
// worker back, trying every runnerRetry; the queue's active count already
// holds that runTasks. If none comes back within runnerWait (a pool a
// reload shrank, or one closed at shutdown), it runs them on its own
// goroutine, so that nothing queued is stranded. It never runs on the
// event loop.
func (s *Server) startRunner() {
	end := time.Now().Add(runnerWait)
	for {
		err := s.pool.Submit(func() { s.runTasks(nil) })
		if err == nil {
			return
		}
		if !errors.Is(err, ants.ErrPoolOverload) || !time.Now().Before(end) {
			s.runTasks(nil)
			return
		}
		time.Sleep(runnerRetry)
	}
}

// runTasks runs f (if any), then queued tasks until none is left.
func (s *Server) runTasks(f func()) {
	q := &s.tasks
	for {
		if f != nil {
			s.runOne(f)
		}
		q.mu.Lock()
		if q.head == len(q.tasks) {
			q.tasks, q.head = q.tasks[:0], 0
			q.active--
			q.mu.Unlock()
			return
		}
		f = q.tasks[q.head]
		q.tasks[q.head] = nil
		q.head++
		if q.head > 1024 && q.head*2 > len(q.tasks) {
			n := copy(q.tasks, q.tasks[q.head:])
			clear(q.tasks[n:])
			q.tasks, q.head = q.tasks[:n], 0
		}
		q.mu.Unlock()
	}
}

// runOne runs one task; a panic is logged and counted, and the worker
// goes on with the queue.
func (s *Server) runOne(f func()) {
	defer func() {
		if v := recover(); v != nil {
			mPanics.Inc()
			s.log.Error("panic in a worker", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	f()
}
