package memstore

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// benchMessage is a typical small message (about 4 KiB, LF line endings
// to exercise the normalisation), the file store benchmarks' message.
var benchMessage = "From: a@example.org\nTo: alice@example.com\nSubject: bench\n\n" + strings.Repeat("0123456789 the quick brown fox jumps over the lazy dog 0123456789\n", 60)

// BenchmarkDeliverMany: deliveries spread over 100 mailboxes from
// parallel goroutines (as the delivery service does), each kept until the
// benchmark ends.
func BenchmarkDeliverMany(b *testing.B) {
	s := newTestStore(b, Options{})
	if err := s.CreateDomain(bg, "example.com"); err != nil {
		b.Fatal(err)
	}
	var boxes []store.Address
	for i := 0; i < 100; i++ {
		a := store.Address{Mailbox: fmt.Sprintf("user%d", i), Domain: "example.com"}
		if err := s.CreateMailbox(bg, a, ""); err != nil {
			b.Fatal(err)
		}
		boxes = append(boxes, a)
	}
	b.SetBytes(int64(len(benchMessage)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := s.Deliver(bg, boxes[i%len(boxes)], strings.NewReader(benchMessage)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// fill delivers n small messages.
func fill(b *testing.B, s *Store, a store.Address, n int) {
	b.Helper()
	for i := 0; i < n; i++ {
		if _, err := s.Deliver(bg, a, strings.NewReader(fmt.Sprintf("message %d\r\n", i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenSession10k: lock, snapshot and release a mailbox of 10,000
// messages.
func BenchmarkOpenSession10k(b *testing.B) {
	s := newTestStore(b, Options{})
	a := mkbox(b, s)
	fill(b, s, a, 10000)
	b.ReportAllocs()
	for b.Loop() {
		ms, err := s.OpenSession(bg, a, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if len(ms.Messages()) != 10000 {
			b.Fatalf("Messages = %d", len(ms.Messages()))
		}
		ms.Close()
	}
}

// BenchmarkRetr: open and read one 4 KiB message of an open session.
func BenchmarkRetr(b *testing.B) {
	s := newTestStore(b, Options{})
	a := mkbox(b, s)
	if _, err := s.Deliver(bg, a, strings.NewReader(benchMessage)); err != nil {
		b.Fatal(err)
	}
	ms, err := s.OpenSession(bg, a, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer ms.Close()
	buf := make([]byte, 64<<10)
	b.SetBytes(ms.Messages()[0].Size)
	b.ReportAllocs()
	for b.Loop() {
		r, err := ms.Open(0)
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := r.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
	}
}
