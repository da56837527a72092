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
