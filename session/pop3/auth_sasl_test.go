package pop3

import (
	"strings"
	"testing"
)

func TestLineLimit(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	s := New(o, ci)
	defer s.Close()
	if s.LineLimit() != 0 {
		t.Fatalf("LineLimit outside SASL = %d", s.LineLimit())
	}
	do(t, s, "AUTH PLAIN")
	if s.LineLimit() != o.MaxAuthLine {
		t.Fatalf("LineLimit in SASL = %d, want %d", s.LineLimit(), o.MaxAuthLine)
	}
	r := s.LineTooLong()
	if string(r.Out) != "-ERR authentication exchange failed: invalid response\r\n" || s.LineLimit() != 0 {
		t.Fatalf("LineTooLong in SASL = %q, limit %d", r.Out, s.LineLimit())
	}
}

// TestRefusedAbandonsSASL: when the engine answered a continuation line
// with "server busy" itself, the exchange is over and the next line is a
// command again.
func TestRefusedAbandonsSASL(t *testing.T) {
	st := testStore(t)
	s := New(testOptions(st), ci)
	s.Greeting()
	if _, out := do(t, s, "AUTH PLAIN"); !strings.HasPrefix(out, "+ ") {
		t.Fatalf("AUTH PLAIN: %q, want a continuation", out)
	}
	if s.LineLimit() == 0 {
		t.Fatal("no SASL line limit during the exchange")
	}
	s.Refused() // the engine answered the client's response line with -ERR [SYS/TEMP]
	if s.LineLimit() != 0 {
		t.Fatal("the exchange is still in progress after Refused")
	}
	if out := mustOK(t, s, "CAPA"); !strings.Contains(out, "SASL") {
		t.Fatalf("CAPA after Refused: %q", out)
	}
}
