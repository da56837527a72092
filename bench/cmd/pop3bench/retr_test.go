package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
	"github.com/pop3svc/pop3svc/bench/pop3c"
)

// bigServer serves msgs as the mailbox of every login on loopback:
// USER, PASS, TOP (the header only), RETR and QUIT. It stops when the
// test ends.
func bigServer(t *testing.T, msgs [][]byte) string {
	t.Helper()
	wire := make([][]byte, len(msgs))
	heads := make([][]byte, len(msgs))
	for i, m := range msgs {
		wire[i] = pop3c.Stuff(m)
		heads[i] = pop3c.Stuff(m[:bytes.Index(m, []byte("\r\n\r\n"))+4])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				r := bufio.NewReader(c)
				fmt.Fprintf(c, "+OK ready\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(l)
					n := 0
					if len(f) > 1 {
						n, _ = strconv.Atoi(f[1])
					}
					switch {
					case f[0] == "QUIT":
						fmt.Fprintf(c, "+OK bye\r\n")
						return
					case f[0] == "USER" || f[0] == "PASS":
						fmt.Fprintf(c, "+OK\r\n")
					case (f[0] == "TOP" || f[0] == "RETR") && n >= 1 && n <= len(msgs):
						fmt.Fprintf(c, "+OK\r\n")
						if f[0] == "TOP" {
							c.Write(heads[n-1])
						} else {
							c.Write(wire[n-1])
						}
					default:
						fmt.Fprintf(c, "-ERR no\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRetrScenarios: retr RETRs the text message and retr-att the
// attachment message, each checked to be the right one; a server that
// numbers them the other way round fails the run before it is timed.
func TestRetrScenarios(t *testing.T) {
	spec := corpus.Default()
	spec.Big = 1
	ctx := context.Background()
	good := &target{Addr: bigServer(t, spec.BigMessages(0)), Spec: spec, Timeout: 10 * time.Second}
	for _, c := range []struct {
		msg      int
		scenario string
	}{{corpus.BigTextMsg, ScenarioRetr}, {corpus.BigAttachmentMsg, ScenarioRetrAtt}} {
		// A second, so that the client starts its first RETR within the
		// run's window on a loaded machine.
		r, err := good.runRetr(ctx, 1, time.Second, c.msg)
		if err != nil || r.Errors != 0 {
			t.Fatalf("%s: %v, %d errors, first %q", c.scenario, err, r.Errors, r.FirstError)
		}
		if r.Scenario != c.scenario || r.Messages < 1 || r.Bytes != r.Messages*corpus.BigSize {
			t.Errorf("%s run: scenario %q, %d messages, %d octets; want %s, at least one message of %d", c.scenario, r.Scenario, r.Messages, r.Bytes, c.scenario, corpus.BigSize)
		}
	}
	m := spec.BigMessages(0)
	swapped := &target{Addr: bigServer(t, [][]byte{m[1], m[0]}), Spec: spec, Timeout: 10 * time.Second}
	for _, msg := range []int{corpus.BigTextMsg, corpus.BigAttachmentMsg} {
		if r, err := swapped.runRetr(ctx, 1, 100*time.Millisecond, msg); err == nil || !strings.Contains(err.Error(), "not the corpus's message") || r.Messages != 0 {
			t.Errorf("RETR %d from a server with the messages swapped: %v after %d messages; want the check to fail first", msg, err, r.Messages)
		}
	}
	if _, err := good.runRetr(ctx, 1, time.Millisecond, 3); err == nil {
		t.Error("runRetr of message 3 gave no error")
	}
	if got := retrScenario(corpus.BigAttachmentMsg, true); got != ScenarioRetrAttTLS {
		t.Errorf("retrScenario(attachment, TLS) = %q", got)
	}
}
