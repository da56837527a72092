package uid

import (
	"sync"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	ms := time.Date(2026, 3, 4, 5, 6, 7, 890e6, time.UTC).UnixMilli()
	if got, want := Format(ms, 12, 345), "20260304050607890001200345"; got != want {
		t.Fatalf("Format = %s, want %s", got, want)
	}
	if !Valid([]byte(Format(ms, 12, 345))) || Valid([]byte("2026030405060789000120034x")) || Valid([]byte("123")) {
		t.Fatal("Valid disagrees with Format")
	}
}

func TestNextGrows(t *testing.T) {
	ms := time.Date(2026, 3, 4, 5, 6, 7, 890e6, time.UTC).UnixMilli()
	g := NewGenerator(MaxNode)
	now := time.UnixMilli(ms)
	prev := ""
	for i := 0; i < 2*PerMillisecond+5; i++ { // overflows the counter twice
		n := g.Next(now)
		if len(n) != Len || n <= prev {
			t.Fatalf("name %d = %s after %s", i, n, prev)
		}
		prev = n
	}
	// The clock going back does not make names go back.
	if n := g.Next(now.Add(-time.Hour)); n <= prev {
		t.Fatalf("name after the clock stepped back = %s <= %s", n, prev)
	}
}

func TestNextConcurrent(t *testing.T) {
	g := NewGenerator(3)
	now := time.Now()
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				n := g.Next(now)
				mu.Lock()
				if seen[n] {
					t.Errorf("name %s made twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
