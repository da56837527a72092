package credential

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Runner computes password checks away from the calling goroutine. A
// Hasher with a Runner (SetRunner) hands it every Verify's hash; the
// Hasher's own slots still bound how many run at once.
type Runner interface {
	// Verify reports whether password matches r (computed as verify
	// does). low: the check may run at a lower CPU priority. An error
	// means the check could not run.
	Verify(ctx context.Context, password []byte, r *Record, low bool) (bool, error)
	// Make computes the hash of a new record (as makeHash does): a
	// password set, or a hash upgraded after a successful login.
	Make(ctx context.Context, p HashParams, salt, password []byte) (*Record, error)
}

// ErrNoWorker wraps the error of a worker that could not start (no
// /proc/self/exe, no process left to fork): the Hasher then computes the
// check itself rather than fail it.
var ErrNoWorker = errors.New("no password hash worker")

// WorkerEnv is the environment variable that makes a program started by
// Workers serve as a hash worker (see WorkerMain); its value is the nice
// value the worker takes.
const WorkerEnv = "POP3SVC_HASH_WORKER"

// maxCheckTime bounds one check in a worker; the hashes' parameters are
// bounded far below it.
const maxCheckTime = time.Minute

// maxWorkerRequest bounds a request a worker reads: a record and a
// password are a few hundred octets.
const maxWorkerRequest = 64 << 10

// WorkerOptions configure Workers.
type WorkerOptions struct {
	// Command is the worker's program and arguments; the program calls
	// WorkerMain when WorkerEnv is set. Empty: this process's own
	// executable (/proc/self/exe, the running file even if replaced on
	// disk since), without arguments.
	Command []string
	// Nice is the nice value (0..19) of the workers running ordinary
	// checks, LowNice of those running low-priority ones.
	Nice, LowNice int
	// Idle is the most idle workers kept per priority; more exit when
	// they finish. 0: GOMAXPROCS.
	Idle int
	// Log reports workers that fail.
	Log *slog.Logger
}

var (
	mWorkerStarts   = metrics.NewCounter("store_hash_worker_starts_total")
	mWorkerFailures = metrics.NewCounter("store_hash_worker_failures_total")
)

// Workers runs password hashes in separate processes, one check at a time
// each, at a nice value of their own: the hash's CPU is then shared out by
// the kernel's scheduler against the service's threads, which keep their
// priority, instead of holding one of the Go scheduler's processors for
// the length of a hash (which delays the event loops by up to a
// scheduling quantum), and the hash's memory (19 MiB for argon2id) is
// never in the service's heap, so that a flood of wrong passwords does not
// drive its collector. Workers start on demand and the idle ones are
// kept. It is safe for concurrent use.
type Workers struct {
	mu     sync.Mutex
	opt    WorkerOptions
	gen    int
	idle   [2][]*worker // by priority: ordinary, low
	closed bool
	starts atomic.Int64
}

type worker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	gen int
	buf []byte
	log *slog.Logger
}

// NewWorkers returns a pool of hash workers; none runs until a check asks.
func NewWorkers(opt WorkerOptions) (*Workers, error) {
	w := &Workers{}
	if err := w.SetOptions(opt); err != nil {
		return nil, err
	}
	return w, nil
}

// SetOptions changes the options: workers started before, once idle,
// exit, and the next checks start workers with the new ones.
func (w *Workers) SetOptions(opt WorkerOptions) error {
	if opt.Nice < 0 || opt.Nice > 19 || opt.LowNice < 0 || opt.LowNice > 19 {
		return fmt.Errorf("hash worker nice values must be 0..19 (are %d and %d)", opt.Nice, opt.LowNice)
	}
	if len(opt.Command) == 0 {
		opt.Command = []string{"/proc/self/exe"}
	}
	if opt.Idle <= 0 {
		opt.Idle = runtime.GOMAXPROCS(0)
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	w.mu.Lock()
	if w.gen > 0 && slices.Equal(w.opt.Command, opt.Command) && w.opt.Nice == opt.Nice && w.opt.LowNice == opt.LowNice && w.opt.Idle == opt.Idle {
		w.opt.Log = opt.Log
		w.mu.Unlock()
		return nil
	}
	w.opt = opt
	w.gen++
	w.stopIdleLocked()
	return nil
}

// stopIdleLocked stops the idle workers and unlocks w.mu.
func (w *Workers) stopIdleLocked() {
	var old []*worker
	for i := range w.idle {
		old = append(old, w.idle[i]...)
		w.idle[i] = nil
	}
	w.mu.Unlock()
	for _, k := range old {
		k.stop()
	}
}

// Started returns how many worker processes have been started.
func (w *Workers) Started() int64 { return w.starts.Load() }

// Close stops the idle workers; busy ones stop when their check ends.
func (w *Workers) Close() {
	w.mu.Lock()
	w.closed = true
	w.stopIdleLocked()
}

// Verify runs the check in a worker of the priority asked.
func (w *Workers) Verify(_ context.Context, password []byte, r *Record, low bool) (bool, error) {
	// The worker gets the hash and its parameters only, never the sealed
	// secrets or the SCRAM keys.
	hashOnly := &Record{Version: r.Version, Alg: r.Alg, Params: r.Params, Salt: r.Salt, Hash: r.Hash, Crypt: r.Crypt}
	req, err := json.Marshal(workerRequest{Record: hashOnly, Password: password})
	if err != nil {
		return false, err
	}
	prio := 0
	if low {
		prio = 1
	}
	answer, err := w.run(prio, req)
	if err != nil {
		return false, err
	}
	switch answer[0] {
	case 'Y':
		return true, nil
	case 'N':
		return false, nil
	}
	return false, fmt.Errorf("password hash worker: unexpected answer %q", answer[0])
}

// Make computes a new record's hash in an ordinary worker.
func (w *Workers) Make(_ context.Context, p HashParams, salt, password []byte) (*Record, error) {
	req, err := json.Marshal(workerRequest{Make: &p, Salt: salt, Password: password})
	if err != nil {
		return nil, err
	}
	answer, err := w.run(0, req)
	if err != nil {
		return nil, err
	}
	switch answer[0] {
	case 'R':
		r, err := Decode(answer[1:])
		if err != nil {
			return nil, fmt.Errorf("password hash worker: %w", err)
		}
		return r, nil
	case 'E':
		return nil, fmt.Errorf("password hash worker: %s", answer[1:])
	}
	return nil, fmt.Errorf("password hash worker: unexpected answer %q", answer[0])
}

// run sends one request to a worker of priority prio and returns its
// answer.
func (w *Workers) run(prio int, req []byte) ([]byte, error) {
	if len(req) > maxWorkerRequest {
		return nil, errors.New("request too large for a password hash worker")
	}
	k, err := w.get(prio)
	if err != nil {
		mWorkerFailures.Inc()
		return nil, fmt.Errorf("%w: %w", ErrNoWorker, err)
	}
	// The check is not abandoned when ctx ends: the slot it holds in the
	// Hasher (and the auth queue) stays taken until the worker answers,
	// so that clients that hang up after sending a password cannot have
	// more hashes computed at once than the bounds allow. A worker that
	// does not answer within maxCheckTime is killed: the check fails
	// instead of holding its slot for ever.
	kill := time.AfterFunc(maxCheckTime, func() { k.cmd.Process.Kill() })
	answer, err := k.ask(req)
	kill.Stop()
	if err != nil {
		mWorkerFailures.Inc()
		k.log.Warn("password hash worker failed", "pid", k.cmd.Process.Pid, "err", err)
		k.stop()
		return nil, fmt.Errorf("password hash worker: %w", err)
	}
	w.put(prio, k)
	return answer, nil
}

// get returns an idle worker of prio, or starts one.
func (w *Workers) get(prio int) (*worker, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, errors.New("hash workers closed")
	}
	if n := len(w.idle[prio]); n > 0 {
		k := w.idle[prio][n-1]
		w.idle[prio][n-1] = nil
		w.idle[prio] = w.idle[prio][:n-1]
		w.mu.Unlock()
		return k, nil
	}
	opt, gen := w.opt, w.gen
	w.mu.Unlock()
	nice := opt.Nice
	if prio == 1 {
		nice = opt.LowNice
	}
	k, err := startWorker(opt.Command, nice, gen)
	if err != nil {
		return nil, err
	}
	k.log = opt.Log
	w.starts.Add(1)
	mWorkerStarts.Inc()
	return k, nil
}

// put keeps an idle worker, unless the options changed since it started,
// the pool is closed or enough are idle.
func (w *Workers) put(prio int, k *worker) {
	w.mu.Lock()
	if w.closed || k.gen != w.gen || len(w.idle[prio]) >= w.opt.Idle {
		w.mu.Unlock()
		k.stop()
		return
	}
	w.idle[prio] = append(w.idle[prio], k)
	w.mu.Unlock()
}

func startWorker(command []string, nice, gen int) (*worker, error) {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append(os.Environ(), WorkerEnv+"="+strconv.Itoa(nice))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		in.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start a password hash worker: %w", err)
	}
	return &worker{cmd: cmd, in: in, out: bufio.NewReader(out), gen: gen}, nil
}

// ask sends one request and reads the answer: one octet ('Y', 'N'), or
// one ('R', 'E') and a 4-octet big-endian length and that many octets.
func (k *worker) ask(req []byte) ([]byte, error) {
	k.buf = binary.BigEndian.AppendUint32(k.buf[:0], uint32(len(req)))
	k.buf = append(k.buf, req...)
	if _, err := k.in.Write(k.buf); err != nil {
		return nil, err
	}
	b, err := k.out.ReadByte()
	if err != nil {
		return nil, err
	}
	if b == 'Y' || b == 'N' {
		return []byte{b}, nil
	}
	var hdr [4]byte
	if _, err := io.ReadFull(k.out, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxWorkerRequest {
		return nil, fmt.Errorf("answer of %d octets", n)
	}
	answer := make([]byte, 1+n)
	answer[0] = b
	if _, err := io.ReadFull(k.out, answer[1:]); err != nil {
		return nil, err
	}
	return answer, nil
}

// stop ends the worker: it exits when its input closes.
func (k *worker) stop() {
	k.in.Close()
	go k.cmd.Wait()
}

type workerRequest struct {
	Record   *Record `json:"r,omitempty"`
	Password []byte  `json:"p"`
	// Make, when set, asks for a new hash with these parameters and Salt
	// instead of a check of Record.
	Make *HashParams `json:"m,omitempty"`
	Salt []byte      `json:"s,omitempty"`
}

// WorkerMain serves as a hash worker on standard input and output, at the
// nice value WorkerEnv gives; a program's main calls it first thing when
// WorkerEnv is set and exits with its result.
func WorkerMain(nice string) int {
	n, err := strconv.Atoi(nice)
	if err != nil || n < 0 || n > 19 {
		fmt.Fprintf(os.Stderr, "hash worker: bad nice value %q\n", nice)
		return 2
	}
	if err := setNice(n); err != nil {
		fmt.Fprintf(os.Stderr, "hash worker: %v\n", err)
		return 1
	}
	if err := ServeWorker(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "hash worker: %v\n", err)
		return 1
	}
	return 0
}

// ServeWorker answers requests until in ends: each is a 4-octet big-endian
// length and a JSON record and password, answered by one octet, 'Y' when
// the password matches and 'N' otherwise.
func ServeWorker(in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxWorkerRequest {
			return fmt.Errorf("request of %d octets", n)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return err
		}
		var req workerRequest
		if err := json.Unmarshal(buf, &req); err != nil {
			return err
		}
		var answer []byte
		alg := ""
		if req.Make != nil {
			alg = req.Make.Alg
			answer = makeAnswer(req)
		} else {
			answer = []byte{'N'}
			if req.Record != nil && req.Record.valid() == nil && verify(req.Password, req.Record) {
				answer[0] = 'Y'
			}
			if req.Record != nil {
				alg = req.Record.Alg
			}
		}
		clear(req.Password)
		if _, err := out.Write(answer); err != nil {
			return err
		}
		if alg == AlgArgon2id {
			// The hash's memory goes back to the system at once, so an
			// idle worker holds none.
			debug.FreeOSMemory()
		}
	}
}

// makeAnswer computes the hash a Make request asks for: 'R' and the
// record, or 'E' and the error.
func makeAnswer(req workerRequest) []byte {
	frame := func(kind byte, b []byte) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{kind}, uint32(len(b))), b...)
	}
	p := req.Make.Normal()
	if err := p.Check(); err != nil {
		return frame('E', []byte(err.Error()))
	}
	r, err := makeHash(p, req.Salt, req.Password)
	if err == nil {
		var b []byte
		if b, err = r.Encode(); err == nil {
			return frame('R', b)
		}
	}
	return frame('E', []byte(err.Error()))
}

// setNice gives every thread of the process the nice value n (Linux keeps
// it per thread; threads started later inherit their creator's).
// A thread started during a pass by one not yet changed is caught by the
// next: passes repeat until one changes nothing.
func setNice(n int) error {
	for pass := 0; pass < 10; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(filepath.Base(t.Name()))
			if err != nil {
				continue
			}
			// getpriority's raw result is 20 - nice.
			if cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid); err == nil && 20-cur == n {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("cannot set nice %d: %w", n, err)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return errors.New("cannot set the nice value of every thread")
}
