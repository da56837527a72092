package main

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/bench/report"
)

func TestParseInts(t *testing.T) {
	got, err := parseInts("1, 16,64")
	if err != nil || len(got) != 3 || got[2] != 64 {
		t.Fatalf("parseInts = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1,x", "-3"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q) gave no error", bad)
		}
	}
}

func TestDotWriter(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	d := &dotWriter{w: w, start: true}
	d.Write([]byte(".a\r\nb.\r\n"))
	d.Write([]byte("."))
	d.Write([]byte(".\r\n"))
	w.Flush()
	if want := "..a\r\nb.\r\n...\r\n"; b.String() != want {
		t.Errorf("dotWriter wrote %q, want %q", b.String(), want)
	}
}

func TestTallyPercentiles(t *testing.T) {
	var tl tally
	for i := 1; i <= 100; i++ {
		tl.lat = append(tl.lat, time.Duration(i)*time.Millisecond)
	}
	tl.sessions.Store(100)
	var r report.Run
	tl.fill(&r, 10)
	if r.P50Ms != 50 || r.P99Ms != 99 || r.MaxMs != 100 || r.SessionsPerSec != 10 {
		t.Errorf("fill = p50 %v p99 %v max %v rate %v; want 50 99 100 10", r.P50Ms, r.P99Ms, r.MaxMs, r.SessionsPerSec)
	}
}

// TestTallyIDs: an acknowledged message retrieved once is right, never
// seen is lost, seen twice (two committed sessions, or committed and
// still in the mailbox) is duplicated, and one taken only by a QUIT whose
// reply never came is counted apart.
func TestTallyIDs(t *testing.T) {
	acked := map[string]bool{"once": true, "left": true, "lost": true, "twice": true, "again": true, "unsure": true, "unsure-retried": true}
	committed := map[string]int{"once": 1, "twice": 2, "again": 1, "unsure-retried": 1, "unacked": 1}
	unsure := map[string]int{"unsure": 1, "unsure-retried": 1}
	left := map[string]int{"left": 1, "again": 1}
	v := tallyIDs(acked, committed, unsure, left)
	if len(v.lost) != 1 || v.lost[0] != "lost" {
		t.Errorf("lost = %v, want [lost]", v.lost)
	}
	if len(v.duplicated) != 2 || v.duplicated[0] != "again" || v.duplicated[1] != "twice" {
		t.Errorf("duplicated = %v, want [again twice]", v.duplicated)
	}
	if v.unconfirmed != 1 {
		t.Errorf("unconfirmed = %d, want 1", v.unconfirmed)
	}
}

// TestBenchID reads the id header of the message head only.
func TestBenchID(t *testing.T) {
	msg := []byte("From: a@b\r\nX-Bench-Id: m1-0-7\r\n\r\nX-Bench-Id: body\r\n")
	if got := benchID(msg); got != "m1-0-7" {
		t.Errorf("benchID = %q, want m1-0-7", got)
	}
	if got := benchID([]byte("From: a@b\r\n\r\nX-Bench-Id: body\r\n")); got != "" {
		t.Errorf("benchID of a message without the header = %q", got)
	}
}
