package report

import (
	"bytes"
	"fmt"
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
			r.Runs = append(r.Runs, Run{Server: s, Scenario: "retr", Round: round, Concurrency: 1, Messages: 50, MBPerSec: 1000 * k, ServerCPUPerOpMs: 6 / k})
			r.Runs = append(r.Runs, Run{Server: s, Scenario: "retr-att", Round: round, Concurrency: 1, Messages: 90, MBPerSec: 1800 * k, ServerCPUPerOpMs: 2 / k})
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

// TestRetrRowsSayWhichMessage: the two RETR scenarios have rows of their
// own, named for their message, with their own figures.
func TestRetrRowsSayWhichMessage(t *testing.T) {
	r := sample()
	want := map[string][2]float64{
		"RETR 10 MiB attachment (base64), throughput":               {1800, 900},
		"server CPU per RETR, 10 MiB attachment (base64)":           {2, 4},
		"RETR 10 MiB text, 1 line in 6 dot-stuffed, throughput":     {1000, 500},
		"server CPU per RETR, 10 MiB text, 1 line in 6 dot-stuffed": {6, 12},
	}
	got := map[string]bool{}
	for _, row := range r.Table([]string{"pop3d", "dovecot"}) {
		if w, ok := want[row.Metric.Name]; ok {
			got[row.Metric.Name] = true
			if row.Values[0] != w[0] || row.Values[1] != w[1] {
				t.Errorf("%s = %v, want %v", row.Metric.Name, row.Values, w)
			}
		}
		if strings.Contains(row.Metric.Name, "TLS RETR") {
			t.Errorf("row %q has no runs but was listed", row.Metric.Name)
		}
	}
	var b bytes.Buffer
	r.WriteText(&b)
	for name := range want {
		if !got[name] {
			t.Errorf("no row %q", name)
		}
		if !strings.Contains(b.String(), name) {
			t.Errorf("text table lacks %q:\n%s", name, b.String())
		}
	}
	// The longest name still leaves the columns aligned: every line of the
	// table puts the first server's column at the same place.
	lines := strings.Split(strings.SplitN(b.String(), "\n\n", 2)[0], "\n")
	col := strings.Index(lines[0], "pop3d") + len("pop3d")
	for _, l := range lines[1:] {
		if l != "" && (len(l) <= col || l[col-1] == ' ' || l[col] != ' ') {
			t.Errorf("line %q: its first value does not end at column %d, under %q", l, col, "pop3d")
		}
	}
	h := new(bytes.Buffer)
	if err := r.WriteHTML(h); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"attachment (base64)", "text, dot-stuffed"} {
		if !strings.Contains(h.String(), ">"+label+"</text>") {
			t.Errorf("the RETR plot lacks the bar group %q", label)
		}
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
	// sample: pop3d 2 ms, dovecot 4 ms per session; RETR of the text
	// message 1000 and 500 MB/s, of the attachment message 1800 and 900.
	check("server CPU per full plaintext session, pop3d/dovecot", 0.5, BarCPUPlain, 0, false)
	check("server CPU per full TLS session, pop3d/dovecot", 0.2, BarCPUTLS, 25, true)
	check("pop3d RETR 10 MiB text, 1 line in 6 dot-stuffed / loopback", 0.5, BarRETRShare, 0, false)
	check("dovecot RETR 10 MiB text, 1 line in 6 dot-stuffed / loopback", 0.25, 0, 0, true)
	check("pop3d RETR 10 MiB attachment (base64) / loopback", 0.9, BarRETRShare, 0, true)
	check("dovecot RETR 10 MiB attachment (base64) / loopback", 0.45, 0, 0, true)
	check("loopback limit (plain Go sender and reader)", 2000, 0, 10, true)
	var b bytes.Buffer
	r.WriteText(&b)
	for _, want := range []string{"bar <= 0.25: met", "bar >= 0.75: NOT met", "bar >= 0.75: met", "load 25.0", "2000 MB/s",
		"pop3d RETR 10 MiB attachment (base64) / loopback", "0.900 (1800 MB/s of 2000 MB/s)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

// TestLimitsAgainstLoopbackFromAFile: the diagnostic reference (a sender
// that sends the attachment message from a file) has its own line and a
// line per server for the attachment RETR, without a bar, after the
// loopback limit's lines, which keep their bars.
func TestLimitsAgainstLoopbackFromAFile(t *testing.T) {
	r := sample()
	for round := 1; round <= 3; round++ {
		r.Runs = append(r.Runs, Run{Server: Loopback, Scenario: Loopback, Round: round, Concurrency: 1, MBPerSec: 2000, LoadAvg: 10})
	}
	var before []string
	for _, l := range r.Limits("pop3d", "dovecot") {
		before = append(before, fmt.Sprintf("%+v", l))
		if strings.Contains(l.Name, "from a file") {
			t.Fatalf("limit %q without a loopback-file run", l.Name)
		}
	}
	for round := 1; round <= 3; round++ {
		r.Runs = append(r.Runs, Run{Server: LoopbackFile, Scenario: LoopbackFile, Round: round, Concurrency: 1, MBPerSec: 2400 + 50*float64(round), LoadAvg: 12})
	}
	if s := r.Servers(); len(s) != 2 || s[0] != "pop3d" || s[1] != "dovecot" {
		t.Fatalf("servers %v, want pop3d and dovecot (the loopback-file runs are not a server)", s)
	}
	ls := r.Limits("pop3d", "dovecot")
	if len(ls) != len(before)+3 {
		t.Fatalf("%d limits with the file reference, want the %d of before and 3 more: %v", len(ls), len(before), ls)
	}
	for i, want := range before {
		if got := fmt.Sprintf("%+v", ls[i]); got != want {
			t.Errorf("limit %d changed with the file reference: %s, was %s", i, got, want)
		}
	}
	// Medians: the file reference 2500 MB/s; the attachment RETR 1800
	// (pop3d) and 900 (dovecot) MB/s.
	want := []struct {
		name  string
		value float64
	}{
		{"loopback from a file (plain Go sendfile of the 10 MiB message and reader)", 2500},
		{"pop3d RETR 10 MiB attachment (base64) / loopback from a file (sendfile)", 0.72},
		{"dovecot RETR 10 MiB attachment (base64) / loopback from a file (sendfile)", 0.36},
	}
	for i, w := range want {
		l := ls[len(before)+i]
		if l.Name != w.name || math.Abs(l.Value-w.value) > 1e-9 || l.Bar != 0 || !l.Met() {
			t.Errorf("limit %d = %q %v bar %v, want %q %v without a bar", len(before)+i, l.Name, l.Value, l.Bar, w.name, w.value)
		}
	}
	if ls[len(before)].Load != 12 {
		t.Errorf("file reference load %v, want 12 (its runs' median)", ls[len(before)].Load)
	}
	var b bytes.Buffer
	r.WriteText(&b)
	text := b.String()
	for _, want := range []string{"2500 MB/s", "0.720 (1800 MB/s of 2500 MB/s)", "0.360 (900 MB/s of 2500 MB/s)",
		"0.900 (1800 MB/s of 2000 MB/s)  load 0.0  bar >= 0.75: met"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "from a file") && strings.Contains(line, "bar") {
			t.Errorf("the diagnostic line %q has a bar", line)
		}
	}
	if strings.Index(text, "loopback from a file") < strings.LastIndex(text, "dot-stuffed / loopback ") {
		t.Errorf("the file reference's lines come before the loopback limit's:\n%s", text)
	}
	h := new(bytes.Buffer)
	if err := r.WriteHTML(h); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.String(), "pop3d RETR 10 MiB attachment (base64) / loopback from a file (sendfile)") {
		t.Error("the HTML report lacks the line against the file reference")
	}

	// Without the loopback limit's runs, the file reference still has its lines.
	var only []Run
	for _, x := range r.Runs {
		if x.Server != Loopback {
			only = append(only, x)
		}
	}
	r.Runs = only
	n := 0
	for _, l := range r.Limits("pop3d", "dovecot") {
		if strings.Contains(l.Name, "/ loopback") && !strings.Contains(l.Name, "from a file") {
			t.Errorf("limit %q without a loopback run", l.Name)
		}
		if strings.Contains(l.Name, "from a file") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d lines against the file reference without a loopback run, want 3", n)
	}
}
