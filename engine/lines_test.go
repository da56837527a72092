package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

type splitResult struct {
	lines []string
}

func (r *splitResult) emit(line []byte, tooLong bool) {
	if tooLong {
		r.lines = append(r.lines, "<too long>")
		return
	}
	r.lines = append(r.lines, string(line))
}

func splitAll(in []byte, max int, cuts []int) []string {
	var s splitter
	var r splitResult
	prev := 0
	for _, c := range cuts {
		s.feed(in[prev:c], max, r.emit)
		prev = c
	}
	s.feed(in[prev:], max, r.emit)
	return r.lines
}

func TestSplitter(t *testing.T) {
	long := strings.Repeat("x", 20)
	tests := []struct {
		in   string
		max  int
		want []string
	}{
		{"USER a\r\nPASS b\r\n", 100, []string{"USER a", "PASS b"}},
		{"USER a\nPASS b\n", 100, []string{"USER a", "PASS b"}},
		{"\r\n\n", 100, []string{"", ""}},
		{"partial", 100, nil},
		{"a\rb\r\n", 100, []string{"a\rb"}},
		{"12345678\r\n", 10, []string{"12345678"}}, // exactly max octets with CRLF
		{"123456789\r\n", 10, []string{"<too long>"}},
		{"123456789\n", 10, []string{"123456789"}}, // bare LF: 10 octets
		{long + "\r\nNOOP\r\n", 10, []string{"<too long>", "NOOP"}},
		{long + long + long, 10, []string{"<too long>"}},
		{"a\x00b\r\n", 100, []string{"a\x00b"}},
	}
	for _, tt := range tests {
		got := splitAll([]byte(tt.in), tt.max, nil)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("split(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
		// One byte at a time gives the same lines.
		cuts := make([]int, 0, len(tt.in))
		for i := 1; i < len(tt.in); i++ {
			cuts = append(cuts, i)
		}
		got1 := splitAll([]byte(tt.in), tt.max, cuts)
		if fmt.Sprint(got1) != fmt.Sprint(tt.want) {
			t.Errorf("split(%q, %d) byte by byte = %q, want %q", tt.in, tt.max, got1, tt.want)
		}
	}
}

func TestSplitterBounded(t *testing.T) {
	var s splitter
	var r splitResult
	chunk := bytes.Repeat([]byte("y"), 4096)
	for range 100 {
		s.feed(chunk, 1024, r.emit)
		if s.pending() > 1024 {
			t.Fatalf("pending %d octets, limit 1024", s.pending())
		}
	}
	s.feed([]byte("\r\nSTAT\r\n"), 1024, r.emit)
	if fmt.Sprint(r.lines) != fmt.Sprint([]string{"<too long>", "STAT"}) {
		t.Fatalf("lines = %q", r.lines)
	}
}

func TestSplitterRandomCuts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		n := rng.IntN(300)
		in := make([]byte, n)
		for i := range in {
			switch rng.IntN(8) {
			case 0:
				in[i] = '\n'
			case 1:
				in[i] = '\r'
			default:
				in[i] = byte('a' + rng.IntN(26))
			}
		}
		max := 3 + rng.IntN(40)
		want := splitAll(in, max, nil)
		var cuts []int
		for i := 1; i < n; i++ {
			if rng.IntN(4) == 0 {
				cuts = append(cuts, i)
			}
		}
		if got := splitAll(in, max, cuts); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("split(%q, %d) with cuts %v = %q, want %q", in, max, cuts, got, want)
		}
	}
}

func FuzzSplitter(f *testing.F) {
	f.Add([]byte("USER a\r\nPASS b\r\n"), uint16(1024), uint64(1))
	f.Add([]byte("xxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nNOOP\r\n"), uint16(10), uint64(7))
	f.Add([]byte("\r\n\r\n\n\r"), uint16(3), uint64(3))
	f.Fuzz(func(t *testing.T, in []byte, max uint16, seed uint64) {
		m := int(max%2048) + 3
		want := splitAll(in, m, nil)
		rng := rand.New(rand.NewPCG(seed, seed>>1))
		var cuts []int
		for i := 1; i < len(in); i++ {
			if rng.IntN(3) == 0 {
				cuts = append(cuts, i)
			}
		}
		got := splitAll(in, m, cuts)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("split(%q, %d) with cuts %v = %q, want %q", in, m, cuts, got, want)
		}
		for _, l := range want {
			if l != "<too long>" && len(l)+1 > m {
				t.Fatalf("line %q longer than %d", l, m)
			}
			if strings.Contains(l, "\n") {
				t.Fatalf("line %q contains LF", l)
			}
		}
	})
}

// limits.max_line bounds command lines (RFC 2449 section 4: 255 octets
// is the least a server must accept); only a session that asks for more
// through session.LineLimiter (a SASL exchange, limits.max_auth_line) gets
// the longer limit.
func TestMaxLineForCommands(t *testing.T) {
	ts := startSleepyServer(t, func(cfg *Config) {
		cfg.MaxLine = 300
		cfg.MaxAuthLine = 4000
	})
	c := ts.dial(t)
	c.expect("+OK ready")
	// 298 octets + CRLF = 300: accepted; one more is too long.
	ok := "ECHO " + strings.Repeat("a", 293)
	c.send(ok + "\r\n")
	c.expect("+OK " + strings.Repeat("a", 293))
	c.send(ok + "b\r\nECHO next\r\n")
	c.expect("-ERR line too long")
	c.expect("+OK next")
	// A command line between max_line and max_auth_line is refused too.
	c.send("ECHO " + strings.Repeat("c", 2000) + "\r\n")
	c.expect("-ERR line too long")
	// In the SASL state the longer limit applies, also when the
	// continuation was pipelined behind the command.
	c.send("SASL\r\n" + strings.Repeat("d", 3000) + "\r\n")
	c.expect("+ go on")
	c.expect("+OK sasl 3000")
	c.send("SASL\r\n" + strings.Repeat("e", 4000) + "\r\nECHO end\r\n")
	c.expect("+ go on")
	c.expect("-ERR line too long")
	c.expect("+OK end")
}
