package certs

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	netsmtp "net/smtp"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// smtpSink keeps the messages it receives.
type smtpSink struct {
	mu   sync.Mutex
	msgs []string
	tls  []bool
}

type smtpSession struct {
	s   *smtpSink
	tls bool
}

func (s *smtpSession) Reset()                               {}
func (s *smtpSession) Logout() error                        { return nil }
func (s *smtpSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *smtpSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.s.mu.Lock()
	s.s.msgs = append(s.s.msgs, string(b))
	s.s.tls = append(s.s.tls, s.tls)
	s.s.mu.Unlock()
	return err
}

// TestSMTPStartTLS: go-smtp's Server.TLSConfig takes TLSConfig() as is
// (RFC 3207 STARTTLS), with the same certificate as POP3.
func TestSMTPStartTLS(t *testing.T) {
	m, err := New(Options{MailRoot: t.TempDir(), Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	sink := &smtpSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &smtpSession{s: sink, tls: isTLS}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = m.TLSConfig()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := netsmtp.Dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	roots := x509.NewCertPool()
	roots.AddCert(m.Certificate().Leaf)
	if err := c.StartTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	st, ok := c.TLSConnectionState()
	if !ok || st.Version < tls.VersionTLS12 {
		t.Fatalf("TLS state %v, %x", ok, st.Version)
	}
	if got := st.PeerCertificates[0].Raw; string(got) != string(m.Certificate().Leaf.Raw) {
		t.Error("SMTP served another certificate")
	}
	if err := c.Mail("bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.com"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: hi\r\n\r\nover TLS\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.msgs) != 1 || !strings.Contains(sink.msgs[0], "over TLS") || !sink.tls[0] {
		t.Errorf("received %q (tls %v)", sink.msgs, sink.tls)
	}
}
