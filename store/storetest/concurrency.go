package storetest

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// testConcurrency delivers from several goroutines while sessions open,
// read and delete: no message is lost, duplicated or partial, and no UID
// is ever reused.
func testConcurrency(t *testing.T, s store.Store) {
	setup(t, s, "alice", "bob")
	boxes := []store.Address{addr("alice", "example.com"), addr("bob", "example.com")}
	const writers, perWriter, readers = 4, 25, 2
	var (
		mu        sync.Mutex
		delivered = map[string]string{} // uid -> body
		consumed  = map[string]bool{}
		errs      []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				body := fmt.Sprintf("From: writer %d\r\n\r\nmessage %d of writer %d\r\n%s", w, i, w, strings.Repeat("z", (w*perWriter+i)*37%4000))
				uid, err := s.Deliver(ctx, boxes[(w+i)%2], strings.NewReader(body))
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				if _, dup := delivered[uid]; dup {
					errs = append(errs, fmt.Errorf("UID %s returned twice", uid))
				}
				if !strings.HasSuffix(body, "\r\n") {
					body += "\r\n"
				}
				delivered[uid] = body
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	var rg sync.WaitGroup
	for r := 0; r < readers; r++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for round := 0; ; round++ {
				select {
				case <-done:
					if round > 0 {
						return
					}
				default:
				}
				ms, err := s.OpenSession(ctx, boxes[(r+round)%2], "reader")
				if errors.Is(err, store.ErrMailboxInUse) {
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					fail(err)
					return
				}
				var del []int
				for i, m := range ms.Messages() {
					rc, err := ms.Open(i)
					if err != nil {
						fail(fmt.Errorf("opening %s: %w", m.UID, err))
						continue
					}
					b, err := io.ReadAll(rc)
					rc.Close()
					if err != nil || int64(len(b)) != m.Size {
						fail(fmt.Errorf("message %s: read %d octets of %d, %v", m.UID, len(b), m.Size, err))
						continue
					}
					mu.Lock()
					want, ok := delivered[m.UID]
					if !ok {
						// Deliver may not have returned yet; the content is checked later.
						want = string(b)
					}
					if consumed[m.UID] {
						errs = append(errs, fmt.Errorf("message %s seen after its deletion", m.UID))
					}
					mu.Unlock()
					if string(b) != want || !strings.HasSuffix(string(b), "\r\n") {
						fail(fmt.Errorf("message %s differs from what was delivered", m.UID))
					}
					if i%2 == 0 {
						del = append(del, i)
					}
				}
				if err := ms.Commit(ctx, del); err != nil {
					fail(err)
					return
				}
				mu.Lock()
				for _, i := range del {
					consumed[ms.Messages()[i].UID] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(done)
	rg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(delivered) != writers*perWriter {
		t.Fatalf("%d UIDs for %d deliveries", len(delivered), writers*perWriter)
	}
	remaining := map[string]bool{}
	for _, b := range boxes {
		ms, err := s.OpenSession(ctx, b, "final")
		wantErr(t, "OpenSession", err, nil)
		for i, m := range ms.Messages() {
			if got := readMsg(t, ms, i); got != delivered[m.UID] {
				t.Errorf("message %s = %.30q, want %.30q", m.UID, got, delivered[m.UID])
			}
			remaining[m.UID] = true
		}
		ms.Close()
	}
	for uid := range delivered {
		if remaining[uid] == consumed[uid] {
			t.Errorf("message %s: remaining %v, deleted %v", uid, remaining[uid], consumed[uid])
		}
	}
}

// testQuotaConcurrent: deliveries racing into one mailbox of one store
// never overrun its quota together. In each round every delivery waits in
// its message's first read until all of them are reading, so that they
// all are between the start of Deliver and its quota check at once.
func testQuotaConcurrent(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	wantErr(t, "SetQuota", s.SetQuota(ctx, a, 1000), nil)
	const racers, rounds = 8, 5
	errs := make(chan error, racers*rounds)
	for r := 0; r < rounds; r++ {
		g := newGate(racers)
		var wg sync.WaitGroup
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := &gatedReader{g: g, r: strings.NewReader(strings.Repeat("q", 98))} // 100 octets stored
				if _, err := s.Deliver(ctx, a, msg); err != nil && !errors.Is(err, store.ErrOverQuota) {
					errs <- err
				}
			}()
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, b, _ := s.Usage(ctx, a); n != 10 || b != 1000 {
		t.Fatalf("Usage = %d messages, %d octets; want exactly 10, 1000", n, b)
	}
}

// gateWait bounds how long a gate waits for every reader: a store that
// reads one message at a time never lets them all in, and the deliveries
// then go on one by one.
const gateWait = 2 * time.Second

// gate opens when n readers have arrived, or after gateWait.
type gate struct {
	mu      sync.Mutex
	n       int
	arrived int
	open    chan struct{}
}

func newGate(n int) *gate { return &gate{n: n, open: make(chan struct{})} }

func (g *gate) wait() {
	g.mu.Lock()
	g.arrived++
	if g.arrived == g.n {
		close(g.open)
	}
	g.mu.Unlock()
	timer := time.NewTimer(gateWait)
	defer timer.Stop()
	select {
	case <-g.open:
	case <-timer.C:
	}
}

// gatedReader waits at its gate before its first read.
type gatedReader struct {
	g      *gate
	passed bool
	r      io.Reader
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if !r.passed {
		r.passed = true
		r.g.wait()
	}
	return r.r.Read(p)
}

// testSessionRace: goroutines racing to open one mailbox: at most one
// holds it at a time, and the others are told it is in use.
func testSessionRace(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	a := addr("alice", "example.com")
	var (
		mu                        sync.Mutex
		holders, maxHolders, wins int
		wg                        sync.WaitGroup
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				ms, err := s.OpenSession(ctx, a, "racer")
				if errors.Is(err, store.ErrMailboxInUse) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				holders++
				wins++
				maxHolders = max(maxHolders, holders)
				mu.Unlock()
				// Give the others a chance to try while the lock is held.
				runtime.Gosched()
				mu.Lock()
				holders--
				mu.Unlock()
				if err := ms.Close(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if maxHolders != 1 || wins == 0 {
		t.Fatalf("max simultaneous holders = %d, wins = %d", maxHolders, wins)
	}
	if mi, err := s.Mailbox(ctx, a); err != nil || mi.InUse {
		t.Fatalf("Mailbox after every session closed = %+v, %v", mi, err)
	}
}
