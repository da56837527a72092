package pop3

import (
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/session"
)

func TestSTLSThenSetTLS(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	o.TLSAvailable = true
	o.SPARequired = true
	s := NewFactory(o)(ci).(*Session)
	defer s.Close()
	if _, out := do(t, s, "USER alice@example.com"); !strings.HasPrefix(out, "-ERR [AUTH]") {
		t.Fatalf("USER on a plain link with sparequired = %q", out)
	}
	r, out := do(t, s, "STLS")
	if out != "+OK Begin TLS negotiation\r\n" || !r.StartTLS {
		t.Fatalf("STLS = %q StartTLS %v", out, r.StartTLS)
	}
	s.SetTLS()
	s.SetChannelBinding(session.ChannelBinding{Exporter: make([]byte, 32)}) // as the engine does after the handshake
	if _, out := do(t, s, "CAPA"); strings.Contains(out, "STLS") || !strings.Contains(out, "USER\r\n") || !strings.Contains(out, "SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n") {
		t.Fatalf("CAPA after TLS = %q", out)
	}
	if r, out := do(t, s, "STLS"); r.StartTLS || out != "-ERR STLS not available\r\n" {
		t.Fatalf("second STLS = %q", out)
	}
	mustOK(t, s, "USER alice@example.com")
	mustOK(t, s, "PASS tanstaaf with spaces")
}
