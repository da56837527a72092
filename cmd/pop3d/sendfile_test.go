package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// attachmentMessage is a message of about size octets as a mail client
// sends a file: a base64 part, in which no line begins with '.'.
func attachmentMessage(size int) string {
	var b strings.Builder
	b.WriteString("From: bob@example.org\r\nTo: alice@example.org\r\nSubject: the report\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "TG9yZW0gaXBzdW0gZG9sb3Igc2l0IGFtZXQsIGNvbnNlY3RldHVyIGFkaXBpc2NpbmcgZW%06d\r\n", i)
	}
	return b.String()
}

const poplibRetrScript = `
import poplib, sys
host, port, user, pw, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
p = poplib.POP3(host, port, timeout=20)
p.user(user)
p.pass_(pw)
resp, lines, octets = p.retr(n)
sys.stdout.buffer.write(b"\r\n".join(lines) + b"\r\n")
p.quit()
`

// Real clients get a message sent with sendfile (no line to byte-stuff)
// exactly as it was delivered, and one with dot lines, read and stuffed,
// just as whole.
func TestRetrSendfileWithCurlAndPoplib(t *testing.T) {
	att := attachmentMessage(3 << 20)
	in := startPop3d(t, "", "", func(ctx context.Context, st store.Store) {
		mailbox(1, 600<<10)(ctx, st) // message 1 has dot lines
		if _, err := st.Deliver(ctx, testAddr, strings.NewReader(att)); err != nil {
			panic(err)
		}
	})
	user := testAddr.String() + ":" + testPassword
	url := "pop3://" + in.POP3
	sent := metric(t, in, "pop3_stream_sendfile_total")
	out, err := runCurl(t, "--user", user, url+"/2")
	if err != nil || out != att {
		t.Fatalf("curl RETR 2: %v; %d octets, want the %d delivered", err, len(out), len(att))
	}
	if got := metric(t, in, "pop3_stream_sendfile_total") - sent; got != 1 {
		t.Fatalf("pop3_stream_sendfile_total rose by %v for a RETR of a message without dot lines, want 1", got)
	}
	out, err = runCurl(t, "--user", user, url+"/1")
	if want := testMessage(1, 600<<10); err != nil || out != want {
		t.Fatalf("curl RETR 1: %v; %d octets, want the %d delivered", err, len(out), len(want))
	}
	if got := metric(t, in, "pop3_stream_sendfile_total") - sent; got != 1 {
		t.Fatalf("a message with dot lines went out with sendfile (%v)", got)
	}
	h, port := hostPort(in)
	if out := runPy(t, poplibRetrScript, h, port, testAddr.String(), testPassword, "2"); out != att {
		t.Fatalf("poplib RETR 2: %d octets, want the %d delivered", len(out), len(att))
	}
}
