package outbound

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// gate is an SMTP server whose DATA waits until released, counting the
// conversations open at once.
type gate struct {
	mu      sync.Mutex
	open    int
	maxOpen int
	release chan struct{}
	inData  chan struct{} // a conversation has read its message and waits for release
	got     int
}

func (g *gate) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return &gateSession{g: g}, nil }

type gateSession struct {
	g      *gate
	counts bool
}

func (s *gateSession) Reset()        {}
func (s *gateSession) Logout() error { return nil }
func (s *gateSession) Mail(string, *gosmtp.MailOptions) error {
	s.g.mu.Lock()
	s.g.open++
	s.counts = true
	s.g.maxOpen = max(s.g.maxOpen, s.g.open)
	s.g.mu.Unlock()
	return nil
}
func (s *gateSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (s *gateSession) Data(r io.Reader) error {
	_, _ = io.Copy(io.Discard, r)
	s.g.inData <- struct{}{}
	<-s.g.release
	s.g.mu.Lock()
	s.g.open--
	s.g.got++
	s.g.mu.Unlock()
	return nil
}

// TestPerDestinationLimit sends five messages at once to one server with
// max_per_destination 2: no more than two conversations are open at any
// time, and all five arrive.
func TestPerDestinationLimit(t *testing.T) {
	g := &gate{release: make(chan struct{}), inData: make(chan struct{}, 5)}
	srv := gosmtp.NewServer(g)
	srv.Domain = "gate.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	tr := New(Options{Hostname: "sender.test", Smarthost: l.Addr().String(), MaxPerDestination: 2, Timeout: time.Minute})
	msg := "From: a@sender.test\r\nSubject: x\r\n\r\nbody\r\n"
	open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(msg)), nil }
	var wg sync.WaitGroup
	results := make([][]Result, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = tr.Send(context.Background(), "a@sender.test", []string{"b@far.test"}, open)
		}()
	}
	// Wait until two conversations sit in DATA and the other three wait
	// for a slot; then let them through one by one.
	for range 2 {
		select {
		case <-g.inData:
		case <-time.After(30 * time.Second):
			t.Fatal("two conversations did not reach DATA within 30s")
		}
	}
	if n := tr.Busy(l.Addr().String()); n != 2 {
		t.Fatalf("%d conversations hold a slot of the destination with two in DATA, want 2", n)
	}
	for range 5 {
		g.release <- struct{}{}
	}
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxOpen != 2 || g.got != 5 {
		t.Errorf("at most %d conversations open at once (want 2), %d messages arrived (want 5)", g.maxOpen, g.got)
	}
	for i, r := range results {
		if len(r) != 1 || !r[0].OK {
			t.Errorf("send %d: %+v", i, r)
		}
	}
}

// TestReplies maps a server's answers to results: 250 delivered, 450
// temporary, 550 permanent with the server's status and text.
func TestReplies(t *testing.T) {
	for _, c := range []struct {
		err  error
		temp bool
		st   string
	}{
		{&gosmtp.SMTPError{Code: 450, EnhancedCode: gosmtp.EnhancedCode{4, 2, 1}, Message: "later"}, true, "4.2.1"},
		{&gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, false, "5.1.1"},
		{&gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.NoEnhancedCode, Message: "no"}, false, "5.0.0"},
		{io.ErrUnexpectedEOF, true, "4.4.2"},
	} {
		r := replyResult(c.err, "mx.test")
		if r.Temp != c.temp || r.Status != c.st || r.OK {
			t.Errorf("replyResult(%v) = %+v, want temp %v status %s", c.err, r, c.temp, c.st)
		}
	}
}
