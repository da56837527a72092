package smtp

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/store"
)

// BenchmarkSMTPFigures measures throughput and latency with fsync: 16
// concurrent senders of 10 KB messages, to one mailbox and to 100
// mailboxes. It reports with -v:
//
//	go test -run '^$' -bench BenchmarkSMTPFigures -benchtime 1x -v ./session/smtp/
func BenchmarkSMTPFigures(t *testing.B) {
	const senders, perSender, size = 16, 60, 10 << 10
	for _, many := range []bool{false, true} {
		name := "one mailbox"
		if many {
			name = "100 mailboxes"
		}
		t.Run(name, func(t *testing.B) {
			e := newEnv(t, envOpts{})
			e.domain("example.com")
			var rcpts []string
			n := 1
			if many {
				n = 100
			}
			for i := 0; i < n; i++ {
				r := fmt.Sprintf("u%d@example.com", i)
				e.mailbox(r, 0)
				rcpts = append(rcpts, r)
			}
			probe := e.mailbox("probe@example.com", 0)
			body := "Subject: perf\r\n\r\n" + filler("p", size)

			start := time.Now()
			var wg sync.WaitGroup
			var lat []time.Duration
			var latMu sync.Mutex
			stop := make(chan struct{})
			probeDone := make(chan struct{})
			go func() { // probes: time from 250 to visible in the store
				defer close(probeDone)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					before, _, _ := e.st.Usage(context.Background(), probe)
					if err := send(e.smtp, []string{probe.String()}, body); err != nil {
						t.Error(err)
						return
					}
					acked := time.Now()
					for {
						n, _, _ := e.st.Usage(context.Background(), probe)
						if n > before {
							break
						}
						if time.Since(acked) > 10*time.Second {
							t.Error("probe message never visible")
							return
						}
						time.Sleep(100 * time.Microsecond) // a measurement: the latency's resolution
					}
					latMu.Lock()
					lat = append(lat, time.Since(acked))
					latMu.Unlock()
				}
			}()
			for w := 0; w < senders; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					c, err := gosmtp.Dial(e.smtp)
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					for i := 0; i < perSender; i++ {
						r := rcpts[(w*perSender+i)%len(rcpts)]
						if err := c.SendMail("s@remote.test", []string{r}, strings.NewReader(body)); err != nil {
							t.Error(err)
							return
						}
					}
					c.Quit()
				}(w)
			}
			wg.Wait()
			accepted := time.Since(start)
			e.waitIdle()
			delivered := time.Since(start)
			close(stop)
			<-probeDone
			total := senders * perSender
			latMu.Lock()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			p := func(q float64) time.Duration {
				if len(lat) == 0 {
					return 0
				}
				return lat[int(q*float64(len(lat)-1))]
			}
			t.Logf("%s: %d messages of %d KB from %d senders: accepted %.0f msg/s, delivered %.0f msg/s; 250→visible p50 %v p99 %v (%d probes)",
				name, total, size>>10, senders, float64(total)/accepted.Seconds(), float64(total)/delivered.Seconds(),
				p(0.50).Round(10*time.Microsecond), p(0.99).Round(10*time.Microsecond), len(lat))
			latMu.Unlock()
		})
	}
}

func send(addr string, rcpts []string, body string) error {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail("s@remote.test", rcpts, strings.NewReader(body)); err != nil {
		return err
	}
	return c.Quit()
}

// TestSwaksAndSmtplib drives the service with real clients: swaks and
// Python's smtplib.
func TestSwaksAndSmtplib(t *testing.T) {
	needTool(t, "swaks")
	needTool(t, "python3")
	e := newEnv(t, envOpts{})
	e.domain("example.com")
	e.mailbox("a@example.com", 0)
	e.mailbox("b@example.com", 0)
	ran := false
	if _, err := exec.LookPath("swaks"); err == nil {
		ran = true
		host, port, _ := net.SplitHostPort(e.smtp)
		out, err := exec.Command("swaks", "--server", host, "--port", port, "--from", "s@remote.test",
			"--to", "a@example.com,b@example.com", "--header", "Subject: swaks test", "--body", "line one\n.dot line\n",
			"--timeout", "10").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		out, err = exec.Command("swaks", "--server", host, "--port", port, "--from", "s@remote.test",
			"--to", "x@elsewhere.test", "--quit-after", "RCPT", "--timeout", "10").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "550 5.7.1") {
			t.Errorf("swaks to a foreign domain: %v\n%s", err, out)
		}
	}
	if _, err := exec.LookPath("python3"); err == nil {
		ran = true
		host, port, _ := net.SplitHostPort(e.smtp)
		script := `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=10)
s.ehlo("py.test")
assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("enhancedstatuscodes") and s.has_extn("size"), s.esmtp_features
refused = s.sendmail("s@remote.test", ["a@example.com", "nobody@example.com"], b"Subject: smtplib test\r\n\r\n.leading dot\r\nend\r\n")
assert refused == {"nobody@example.com": (550, b"5.1.1 No such mailbox here")}, refused
try:
    s.sendmail("s@remote.test", ["x@elsewhere.test"], b"Subject: x\r\n\r\nx\r\n")
    raise SystemExit("relayed")
except smtplib.SMTPRecipientsRefused as e:
    assert e.recipients["x@elsewhere.test"][0] == 550, e.recipients
s.quit()
`
		out, err := exec.Command("python3", "-c", script, host, port).CombinedOutput()
		if err != nil {
			t.Fatalf("python smtplib: %v\n%s", err, out)
		}
	}
	if !ran {
		t.Fatal("neither swaks nor python3 ran")
	}
	e.waitIdle()
	a := e.messages("a@example.com")
	b := e.messages("b@example.com")
	var subjects []string
	for _, m := range a {
		for _, s := range []string{"swaks test", "smtplib test"} {
			if strings.Contains(string(m), "Subject: "+s+"\r\n") {
				subjects = append(subjects, s)
			}
		}
		if strings.Contains(string(m), "smtplib test") && !strings.Contains(string(m), "\r\n.leading dot\r\n") {
			t.Errorf("dot line lost: %q", m)
		}
		if strings.Contains(string(m), "swaks test") && !strings.Contains(string(m), "\r\n.dot line\r\n") {
			t.Errorf("swaks dot line lost: %q", m)
		}
	}
	t.Logf("a@ got %v; b@ got %d", subjects, len(b))
	if _, err := exec.LookPath("swaks"); err == nil && len(b) != 1 {
		t.Errorf("b@ got %d messages, want the swaks one", len(b))
	}
}

var _ = store.ParseAddress
