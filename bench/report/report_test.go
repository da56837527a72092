package report

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func sample() *Results {
	r := &Results{Command: "pop3bench compare", Host: "test"}
	for round := 1; round <= 3; round++ {
		for _, s := range []string{"pop3d", "dovecot"} {
			k := 1.0
			if s == "dovecot" {
				k = 0.5
			}
			for _, c := range []int{1, 16, 64} {
				r.Runs = append(r.Runs, Run{Server: s, Scenario: "sessions", Round: round, Concurrency: c,
					SessionsPerSec: k * float64(c*10+round), P99Ms: 10 / k, ServerCPUPerOpMs: 2 / k})
			}
			r.Runs = append(r.Runs, Run{Server: s, Scenario: "retr", Round: round, Concurrency: 1, MBPerSec: 1000 * k})
			r.Runs = append(r.Runs, Run{Server: s, Scenario: "idle-prelogin", Round: round, Conns: 19000, PSSPerConn: 2048 / k})
		}
	}
	return r
}

func TestTableAndRatio(t *testing.T) {
	r := sample()
	rows := r.Table([]string{"pop3d", "dovecot"})
	var found bool
	for _, row := range rows {
		if row.Metric.Name == "sessions/s at 64 clients" {
			found = true
			// rounds give 641, 642, 643 and half of it: medians 642 and 321.
			if row.Values[0] != 642 || row.Values[1] != 321 || math.Abs(row.Ratio-2) > 1e-9 {
				t.Errorf("sessions/s row = %v ratio %v, want 642, 321, 2", row.Values, row.Ratio)
			}
		}
		if strings.HasPrefix(row.Metric.Name, "TLS") {
			t.Errorf("row %q has no runs but was listed", row.Metric.Name)
		}
	}
	if !found {
		t.Fatal("no sessions/s row")
	}
	var b bytes.Buffer
	r.WriteText(&b)
	if !strings.Contains(b.String(), "2.00x") {
		t.Errorf("text table lacks the ratio:\n%s", b.String())
	}
}

func TestHTMLAndRoundTrip(t *testing.T) {
	r := sample()
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	h := b.String()
	if n := strings.Count(h, "<svg"); n < 4 {
		t.Errorf("report has %d plots, want at least 4", n)
	}
	if !strings.Contains(h, "polyline") || !strings.Contains(h, "dovecot") {
		t.Error("report lacks the line plot or the peer's series")
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil || len(back.Runs) != len(r.Runs) {
		t.Fatalf("Load = %d runs, %v", len(back.Runs), err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file gave no error")
	}
}

func TestMedianEvenAndFailedRuns(t *testing.T) {
	r := &Results{Runs: []Run{
		{Server: "a", Scenario: "retr", Messages: 10, MBPerSec: 100},
		{Server: "a", Scenario: "retr", Messages: 10, MBPerSec: 300},
		{Server: "a", Scenario: "retr", Messages: 0, Errors: 5, MBPerSec: 0}, // failed: left out
	}}
	v, _, ok := r.MedianValue("a", "retr", 0, func(x Run) float64 { return x.MBPerSec })
	if !ok || v != 200 {
		t.Errorf("MedianValue = %v, %v; want 200 (mean of the middle two, failed run left out)", v, ok)
	}
	if _, _, ok := r.MedianValue("b", "retr", 0, func(x Run) float64 { return x.MBPerSec }); ok {
		t.Error("MedianValue of a missing server reported a value")
	}
	row := Row{Conns: []int{10000, 2000}}
	if got := row.connsLabel(); got != " (10000/2000)" {
		t.Errorf("connsLabel = %q", got)
	}
}

func TestLimitsAgainstLoopbackAndPeer(t *testing.T) {
	r := sample()
	for round := 1; round <= 3; round++ {
		r.Runs = append(r.Runs, Run{Server: Loopback, Scenario: Loopback, Round: round, MBPerSec: 2000, LoadAvg: 10})
		r.Runs = append(r.Runs, Run{Server: "pop3d", Scenario: "sessions-tls", Round: round, Concurrency: 64, ServerCPUPerOpMs: 3, LoadAvg: 20})
		r.Runs = append(r.Runs, Run{Server: "dovecot", Scenario: "sessions-tls", Round: round, Concurrency: 64, ServerCPUPerOpMs: 15, LoadAvg: 30})
	}
	if s := r.Servers(); len(s) != 2 || s[0] != "pop3d" || s[1] != "dovecot" {
		t.Fatalf("servers %v, want pop3d and dovecot (the loopback runs are not a server)", s)
	}
	got := map[string]Limit{}
	for _, l := range r.Limits("pop3d", "dovecot") {
		got[l.Name] = l
	}
	check := func(name string, v, bar, load float64, met bool) {
		t.Helper()
		l, ok := got[name]
		if !ok {
			t.Fatalf("no limit %q in %v", name, got)
		}
		if math.Abs(l.Value-v) > 1e-9 || l.Bar != bar || l.Load != load || l.Met() != met {
			t.Errorf("%s = %v bar %v load %v met %v, want %v, %v, %v, %v", name, l.Value, l.Bar, l.Load, l.Met(), v, bar, load, met)
		}
	}
	// sample: pop3d 2 ms, dovecot 4 ms per session; RETR 1000 and 500 MB/s.
	check("server CPU per full plaintext session, pop3d/dovecot", 0.5, BarCPUPlain, 0, false)
	check("server CPU per full TLS session, pop3d/dovecot", 0.2, BarCPUTLS, 25, true)
	check("pop3d RETR 10 MiB / loopback", 0.5, BarRETRShare, 0, false)
	check("dovecot RETR 10 MiB / loopback", 0.25, 0, 0, true)
	check("loopback limit (plain Go sender and reader)", 2000, 0, 10, true)
	var b bytes.Buffer
	r.WriteText(&b)
	for _, want := range []string{"bar <= 0.25: met", "bar >= 0.75: NOT met", "load 25.0", "2000 MB/s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}
