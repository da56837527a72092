package credential

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// TestMain lets the test binary serve as the hash worker the tests start.
func TestMain(m *testing.M) {
	if v, ok := os.LookupEnv(WorkerEnv); ok {
		os.Exit(WorkerMain(v))
	}
	os.Exit(m.Run())
}

// cheapOfEachAlgorithm are cheap parameters of every hash algorithm.
var cheapOfEachAlgorithm = []HashParams{
	{Alg: AlgArgon2id, Argon2: cheap},
	{Alg: AlgBcrypt, BcryptCost: 4},
	{Alg: AlgSHA512Crypt, SHA512Rounds: 1000},
}

func testWorkers(t *testing.T, nice, low int) *Workers {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWorkers(WorkerOptions{Command: []string{exe}, Nice: nice, LowNice: low})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func TestWorkersVerifyEveryAlgorithm(t *testing.T) {
	w := testWorkers(t, 0, 0)
	key := NewKey()
	a := store.Address{Mailbox: "bob", Domain: "example.org"}
	for _, p := range cheapOfEachAlgorithm {
		h, err := NewHasher(p, 2)
		if err != nil {
			t.Fatal(err)
		}
		r, err := h.New(context.Background(), key, a, "s3cret")
		if err != nil {
			t.Fatal(err)
		}
		h.SetRunner(w)
		if err := h.Verify(context.Background(), r, "s3cret"); err != nil {
			t.Errorf("%s: right password through a worker: %v", p.Alg, err)
		}
		if err := h.Verify(context.Background(), r, "wrong"); !errors.Is(err, store.ErrAuthFailed) {
			t.Errorf("%s: wrong password through a worker: %v, want ErrAuthFailed", p.Alg, err)
		}
		// No record: the dummy, through the worker, and a failure.
		if err := h.Verify(store.WithLowPriority(context.Background()), nil, "s3cret"); !errors.Is(err, store.ErrAuthFailed) {
			t.Errorf("%s: no record: %v, want ErrAuthFailed", p.Alg, err)
		}
	}
	// One ordinary and one low-priority worker, each kept and reused.
	if n := w.Started(); n != 2 {
		t.Errorf("%d workers started for checks one at a time at two priorities, want 2", n)
	}
}

// niceOf returns the nice value of every thread of process pid.
func niceOf(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis; nice is the 19th
		// field of the line, the 17th after the command.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		n, err := strconv.Atoi(f[16])
		if err != nil {
			t.Fatalf("stat of %d: %q", pid, b)
		}
		out = append(out, n)
	}
	return out
}

func TestWorkersRunAtTheirNiceValues(t *testing.T) {
	w := testWorkers(t, 3, 17)
	h, err := NewHasher(HashParams{Alg: AlgArgon2id, Argon2: cheap}, 2)
	if err != nil {
		t.Fatal(err)
	}
	h.SetRunner(w)
	ctx := context.Background()
	for _, c := range []struct {
		ctx  context.Context
		want int
	}{{ctx, 3}, {store.WithLowPriority(ctx), 17}} {
		h.Verify(c.ctx, nil, "x")
		w.mu.Lock()
		k := w.idle[0]
		if c.want == 17 {
			k = w.idle[1]
		}
		if len(k) != 1 {
			w.mu.Unlock()
			t.Fatalf("%d idle workers after a check, want 1", len(k))
		}
		pid := k[0].cmd.Process.Pid
		w.mu.Unlock()
		for _, n := range niceOf(t, pid) {
			if n != c.want {
				t.Errorf("a thread of worker %d runs at nice %d, want %d", pid, n, c.want)
			}
		}
	}
}

func TestWorkerDeathFailsOneCheckOnly(t *testing.T) {
	w := testWorkers(t, 0, 0)
	h, err := NewHasher(HashParams{Alg: AlgSHA512Crypt, SHA512Rounds: 1000}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.New(context.Background(), NewKey(), store.Address{Mailbox: "a", Domain: "b.c"}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	h.SetRunner(w)
	if err := h.Verify(context.Background(), r, "pw"); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	k := w.idle[0][0]
	w.mu.Unlock()
	k.cmd.Process.Signal(syscall.SIGKILL)
	k.cmd.Wait() // the worker is idle: nothing else waits for it
	err = h.Verify(context.Background(), r, "pw")
	if err == nil || errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("check through a killed worker: %v, want an error that is not a failed password", err)
	}
	if err := h.Verify(context.Background(), r, "pw"); err != nil {
		t.Fatalf("check after a worker died: %v (a new worker should start)", err)
	}
}

func TestWorkersAfterSetOptionsStartNew(t *testing.T) {
	w := testWorkers(t, 0, 0)
	h, err := NewHasher(HashParams{Alg: AlgSHA512Crypt, SHA512Rounds: 1000}, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.SetRunner(w)
	h.Verify(context.Background(), nil, "x")
	exe, _ := os.Executable()
	if err := w.SetOptions(WorkerOptions{Command: []string{exe}, Nice: 5, LowNice: 19}); err != nil {
		t.Fatal(err)
	}
	h.Verify(context.Background(), nil, "x")
	if n := w.Started(); n != 2 {
		t.Errorf("%d workers started, want a second one after SetOptions", n)
	}
	if err := w.SetOptions(WorkerOptions{Nice: 20}); err == nil {
		t.Error("SetOptions accepted nice 20")
	}
}

func TestServeWorkerRefusesAnOversizedRequest(t *testing.T) {
	in := strings.NewReader("\xff\xff\xff\xff")
	var out strings.Builder
	if err := ServeWorker(in, &out); err == nil {
		t.Fatal("a request announcing 4 GiB was read")
	}
	if out.Len() != 0 {
		t.Fatalf("answered %q", out.String())
	}
}

// A worker program that cannot start makes the checks run in the process.
func TestWorkerCommandMissingChecksInProcess(t *testing.T) {
	w, err := NewWorkers(WorkerOptions{Command: []string{filepath.Join(t.TempDir(), "none")}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h, _ := NewHasher(HashParams{Alg: AlgSHA512Crypt, SHA512Rounds: 1000}, 1)
	r, err := h.New(context.Background(), NewKey(), store.Address{Mailbox: "a", Domain: "b.c"}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	h.SetRunner(w)
	// No worker can start: the checks run in the process, right and wrong.
	if err := h.Verify(context.Background(), r, "pw"); err != nil {
		t.Fatalf("right password with no worker program: %v", err)
	}
	if err := h.Verify(context.Background(), r, "wrong"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("wrong password with no worker program: %v, want ErrAuthFailed", err)
	}
	if w.Started() != 0 {
		t.Fatalf("%d workers started from a missing program", w.Started())
	}
}

// New records' hashes are made in a worker too (a password set, a hash
// upgraded at login); the sealed secrets and SCRAM keys are added here.
func TestWorkersMakeEveryAlgorithm(t *testing.T) {
	w := testWorkers(t, 0, 0)
	key := NewKey()
	a := store.Address{Mailbox: "bob", Domain: "example.org"}
	for i, p := range cheapOfEachAlgorithm {
		h, err := NewHasher(p, 2)
		if err != nil {
			t.Fatal(err)
		}
		h.SetRunner(w)
		r, err := h.New(context.Background(), key, a, "s3cret")
		if err != nil {
			t.Fatalf("%s: New through a worker: %v", p.Alg, err)
		}
		if n := w.Started(); n != 1 {
			t.Fatalf("%s: %d workers started, want the one kept", p.Alg, n)
		}
		if len(r.Sealed) == 0 || len(r.SCRAM) == 0 || !r.Current(h.Params()) {
			t.Errorf("%s: record made through a worker lacks its secrets or parameters: %+v", p.Alg, r)
		}
		// Checked here, without the worker.
		h.SetRunner(nil)
		if err := h.Verify(context.Background(), r, "s3cret"); err != nil {
			t.Errorf("%s (%d): the worker's hash does not verify here: %v", p.Alg, i, err)
		}
		if err := h.Verify(context.Background(), r, "wrong"); !errors.Is(err, store.ErrAuthFailed) {
			t.Errorf("%s: wrong password against the worker's hash: %v", p.Alg, err)
		}
	}
}

// A worker refuses to make a hash with parameters out of bounds.
func TestWorkerMakeRefusesBadParameters(t *testing.T) {
	w := testWorkers(t, 0, 0)
	_, err := w.Make(context.Background(), HashParams{Alg: AlgBcrypt, BcryptCost: 31}, make([]byte, SaltLen), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "bcrypt cost") {
		t.Fatalf("bcrypt cost 31 in a worker: %v, want the bounds error", err)
	}
	// The worker is still there for the next request.
	if _, err := w.Make(context.Background(), HashParams{Alg: AlgSHA512Crypt, SHA512Rounds: 1000}.Normal(), make([]byte, SaltLen), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if n := w.Started(); n != 1 {
		t.Fatalf("%d workers started, want 1", n)
	}
}
