//go:build linux

package filestore

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// benchMessage is a typical small message (about 4 KiB, LF line endings
// to exercise the normalisation).
var benchMessage = "From: a@example.org\nTo: alice@example.com\nSubject: bench\n\n" + strings.Repeat("0123456789 the quick brown fox jumps over the lazy dog 0123456789\n", 60)

// BenchmarkDeliverOne: deliveries per second into one mailbox, each fsynced.
func BenchmarkDeliverOne(b *testing.B) {
	s := newTestStore(b, Options{})
	a := mkbox(b, s)
	b.SetBytes(int64(len(benchMessage)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Deliver(bg, a, strings.NewReader(benchMessage)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkDeliverMany: deliveries per second spread over 100 mailboxes
// from parallel goroutines (as the delivery service does).
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
	b.SetParallelism(4)
	b.ResetTimer()
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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkOpenSession10k: time and allocations to open (lock, list, sort)
// and close a mailbox of 10,000 messages.
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

// BenchmarkOpenSession50: the same for a mailbox of 50 messages, the
// bench corpus's: the allocations a login's scan makes.
func BenchmarkOpenSession50(b *testing.B) {
	s := newTestStore(b, Options{})
	a := mkbox(b, s)
	fill(b, s, a, 50)
	b.ReportAllocs()
	for b.Loop() {
		ms, err := s.OpenSession(bg, a, "bench")
		if err != nil {
			b.Fatal(err)
		}
		ms.Close()
	}
}

// BenchmarkVerifyPassword is one argon2id check with the default
// parameters (the verified-login cache off): the cost of a first login and
// of every wrong password.
func BenchmarkVerifyPassword(b *testing.B) {
	s := newTestStore(b, Options{Argon2: DefaultArgon2, AuthCacheTTL: -1})
	a := mkbox(b, s)
	for b.Loop() {
		if err := s.VerifyPassword(bg, a, "pw"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyPasswordCached is a repeated login with the right
// password, served by the verified-login cache.
func BenchmarkVerifyPasswordCached(b *testing.B) {
	s := newTestStore(b, Options{Argon2: DefaultArgon2})
	a := mkbox(b, s)
	for b.Loop() {
		if err := s.VerifyPassword(bg, a, "pw"); err != nil {
			b.Fatal(err)
		}
	}
}

// hashChoices are the password hashes the README measures: the default,
// OWASP's other argon2id minimums, bcrypt and SHA-512-crypt.
var hashChoices = []struct {
	name string
	p    HashParams
}{
	{"argon2id-m19-t3-default", HashParams{Alg: AlgArgon2id, Argon2: DefaultArgon2}},
	{"argon2id-m19-t2", HashParams{Alg: AlgArgon2id, Argon2: Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1, KeyLen: 32}}},
	{"argon2id-m46-t1", HashParams{Alg: AlgArgon2id, Argon2: Argon2Params{Time: 1, MemoryKiB: 46 << 10, Threads: 1, KeyLen: 32}}},
	{"argon2id-m7-t5", HashParams{Alg: AlgArgon2id, Argon2: Argon2Params{Time: 5, MemoryKiB: 7 << 10, Threads: 1, KeyLen: 32}}},
	{"bcrypt-10", HashParams{Alg: AlgBcrypt, BcryptCost: 10}},
	{"sha512-crypt-5000", HashParams{Alg: AlgSHA512Crypt, SHA512Rounds: 5000}},
}

// BenchmarkVerifyPasswordCold: password checks per second on one core
// with nothing remembered (the verified-login cache off), per hash
// choice: a login's cost after a restart.
func BenchmarkVerifyPasswordCold(b *testing.B) {
	for _, c := range hashChoices {
		b.Run(c.name, func(b *testing.B) {
			s := newTestStore(b, Options{Hash: c.p, Argon2: c.p.Argon2, AuthCacheTTL: -1})
			a := mkbox(b, s)
			if err := s.SetPassword(bg, a, "correct horse"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := s.VerifyPassword(bg, a, "correct horse"); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time, not wall time, gives the rate per core on a
			// machine that other work shares.
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/login")
			b.ReportMetric(float64(b.N)/cpu.Seconds(), "logins/s/core")
		})
	}
}

// BenchmarkOpenSessionEmpty: the store's part of a login besides the hash:
// take the mailbox lock, list an empty maildrop, release the lock.
func BenchmarkOpenSessionEmpty(b *testing.B) {
	s := newTestStore(b, Options{})
	a := mkbox(b, s)
	cpu0 := cpuTime()
	for b.Loop() {
		ms, err := s.OpenSession(bg, a, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if err := ms.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "opens/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/open")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOpenMessage is RETR's store part for a small message: the lock
// check, the open and the close (the read is the engine's). "fresh" is
// within half a lease of taking the lock (no lstat), "checked" past it
// (an lstat of the lock folder before each open).
func BenchmarkOpenMessage(b *testing.B) {
	for _, tc := range []struct {
		name string
		age  time.Duration
	}{{"fresh", 0}, {"checked", store.DefaultLockLease}} {
		b.Run(tc.name, func(b *testing.B) {
			now := time.Now()
			s := newTestStore(b, Options{Now: func() time.Time { return now }})
			a := mkbox(b, s)
			fill(b, s, a, 50)
			ms, err := s.OpenSession(bg, a, "bench")
			if err != nil {
				b.Fatal(err)
			}
			defer ms.Close()
			now = now.Add(tc.age)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rc, err := ms.Open(i % 50)
				if err != nil {
					b.Fatal(err)
				}
				rc.Close()
				i++
			}
		})
	}
}
