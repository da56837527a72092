package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// BenchmarkOutboundFigures measures submitted messages per second (each
// fsynced into the outbound queue before its 250) and outbound deliveries
// per second to a local MX (the test's SMTP receiver), without and with
// DKIM signing. Short; it reports with -v:
//
//	go test ./cmd/pop3d -run '^$' -bench BenchmarkOutboundFigures -benchtime 1x -v
func BenchmarkOutboundFigures(b *testing.B) {
	const (
		clients = 4
		each    = 50
		size    = 4 << 10
	)
	r := startReceiver(b, "127.0.0.1", nil, nil)
	z, resolver := startDNS(b)
	z.setMX("sink.test", 10, "mx.sink.test")
	z.setA("mx.sink.test", "127.0.0.1")
	in := startSenderWith(b, resolver, port(b, r.addr), "", true,
		pop3dtest.Config{SubmissionTable: "max_messages_per_hour = 0"}, `retry_min = "200ms"
retry_max = "500ms"`)
	body := strings.Repeat(strings.Repeat("x", 70)+"\r\n", size/72)
	for _, dkimOn := range []bool{false, true} {
		if dkimOn {
			in.Ctl(b, "", "dkim", "add", "example.org")
		}
		before := r.count()
		start := time.Now()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := smtpClient(b, in.Submission)
				startTLS(b, cl)
				if err := cl.Auth(plainAuth{"alice@example.org", alicePass}); err != nil {
					b.Error(err)
					return
				}
				for i := range each {
					msg := fmt.Sprintf("From: alice@example.org\r\nTo: x@sink.test\r\nSubject: figure %d-%d\r\n\r\n%s", c, i, body)
					if err := send(cl, "alice@example.org", []string{"x@sink.test"}, msg); err != nil {
						b.Error(err)
						return
					}
				}
				_ = cl.Quit()
			}()
		}
		wg.Wait()
		submitted := time.Since(start)
		if !pop3dtest.Eventually(5*time.Minute, func() bool { return !(r.count()-before < clients*each) }) {
			b.Fatalf("only %d of %d delivered", r.count()-before, clients*each)
		}
		delivered := time.Since(start)
		n := float64(clients * each)
		b.Logf("DKIM %v: %d messages of %d KiB from %d clients: submitted %.0f/s (fsync before each 250); delivered to the local MX %.0f/s (from the first submission to the last arrival)",
			dkimOn, clients*each, size>>10, clients, n/submitted.Seconds(), n/delivered.Seconds())
	}
}
