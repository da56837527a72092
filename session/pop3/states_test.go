package pop3

import (
	"strings"
	"testing"
)

// The session states a command can arrive in.
const (
	inAuthorization = "AUTHORIZATION"
	afterUSER       = "AUTHORIZATION after USER"
	afterFailure    = "AUTHORIZATION after a failed login"
	inTransaction   = "TRANSACTION"
)

// stateTable is the seed's Authorization, Transaction and Update State
// tables with RFC 2449 (CAPA), RFC 2595 (STLS), RFC 5034 (AUTH) and RFC
// 6856 (UTF8, LANG): the
// states each command is valid in. It is written out here, apart from the
// table the session uses, so that a change there shows.
var stateTable = []struct {
	line  string
	valid []string
}{
	{"USER alice@example.com", []string{inAuthorization, afterUSER, afterFailure}},
	{"PASS tanstaaf with spaces", []string{inAuthorization, afterUSER, afterFailure}},
	{"APOP alice@example.com c4c9334bac560ecc979e58001b3e22fb", []string{inAuthorization, afterUSER, afterFailure}},
	{"AUTH", []string{inAuthorization, afterUSER, afterFailure}},
	{"STLS", []string{inAuthorization, afterUSER, afterFailure}},
	{"CAPA", []string{inAuthorization, afterUSER, afterFailure, inTransaction}},
	{"QUIT", []string{inAuthorization, afterUSER, afterFailure, inTransaction}},
	{"STAT", []string{inTransaction}},
	{"LIST", []string{inTransaction}},
	{"RETR 1", []string{inTransaction}},
	{"DELE 1", []string{inTransaction}},
	{"NOOP", []string{inTransaction}},
	{"RSET", []string{inTransaction}},
	{"TOP 1 1", []string{inTransaction}},
	{"UIDL", []string{inTransaction}},
	{"UTF8", []string{inAuthorization, afterUSER, afterFailure}},
	{"LANG", []string{inAuthorization, afterUSER, afterFailure, inTransaction}},
}

func TestCommandStates(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	o.TLSAvailable = true
	o.MaxAuthFailures = 0
	enter := map[string][]string{
		inAuthorization: nil,
		afterUSER:       {"USER alice@example.com"},
		afterFailure:    {"USER alice@example.com", "PASS wrong"},
		inTransaction:   {"USER alice@example.com", "PASS tanstaaf with spaces"},
	}
	const wrongState = "-ERR command not valid in this state\r\n"
	for _, c := range stateTable {
		for _, where := range []string{inAuthorization, afterUSER, afterFailure, inTransaction} {
			s := New(o, ci)
			s.Greeting()
			for _, l := range enter[where] {
				do(t, s, l)
			}
			if s.state.String() != strings.Fields(where)[0] {
				t.Fatalf("%s: the session is in %s", where, s.state)
			}
			_, out := do(t, s, c.line)
			valid := false
			for _, v := range c.valid {
				valid = valid || v == where
			}
			switch {
			case valid && (out == wrongState || strings.HasPrefix(out, "-ERR unknown command")):
				t.Errorf("%s in %s: %q, want it served", c.line, where, out)
			case !valid && out != wrongState:
				t.Errorf("%s in %s: %q, want %q", c.line, where, out, wrongState)
			}
			s.Close()
		}
	}
	// Every command the session knows is in the table above.
	for cmd := range commandStates {
		found := false
		for _, c := range stateTable {
			found = found || strings.Fields(c.line)[0] == cmd
		}
		if !found {
			t.Errorf("command %s is not in the state table test", cmd)
		}
	}
}

// A command the session does not know is unknown in every state, and a
// known one out of its state counts as a bad command before login.
func TestWrongStateCountsAsBadCommand(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	o.MaxBadCommands = 3
	s := New(o, ci)
	defer s.Close()
	s.Greeting()
	for i, l := range []string{"NOOP", "STAT", "XYZZY"} {
		r, out := do(t, s, l)
		if (i == 2) != r.Close {
			t.Fatalf("%s (bad command %d): close %v, %q", l, i+1, r.Close, out)
		}
	}
	s2 := login(t, o, "alice@example.com", "tanstaaf with spaces")
	defer s2.Close()
	if _, out := do(t, s2, "XYZZY"); out != "-ERR unknown command\r\n" {
		t.Fatalf("unknown command after login: %q", out)
	}
}
