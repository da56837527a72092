package pop3

import "testing"

func TestAfterQuit(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	s := login(t, o, "bob@example.com", "bobpass")
	defer s.Close()
	if r, _ := do(t, s, "QUIT"); !r.Close || !isOK(r) {
		t.Fatalf("QUIT = %q", r.Out)
	}
	if r, out := do(t, s, "NOOP"); !r.Close || out != "-ERR session is over\r\n" {
		t.Fatalf("after QUIT: %q close %v", out, r.Close)
	}
}
