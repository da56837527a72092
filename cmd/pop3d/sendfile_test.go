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

// htmlMessage is a message of about size octets as a newsletter is sent:
// an HTML part whose style sheet has lines that begin with '.' (CSS
// classes), a few of them, and a base64 image.
func htmlMessage(size int) string {
	var b strings.Builder
	b.WriteString("From: news@example.org\r\nTo: alice@example.org\r\nSubject: this week\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=b1\r\n\r\n--b1\r\n" +
		"Content-Type: text/html\r\n\r\n<html><head><style>\r\n.header { color: red }\r\n" +
		".\r\n.footer { font-size: small }\r\n</style></head><body>news</body></html>\r\n" +
		"--b1\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk%06d\r\n", i)
	}
	b.WriteString("--b1--\r\n")
	return b.String()
}

// Real clients get a message sent with sendfile exactly as it was
// delivered: one without a line to byte-stuff, and one with a few such
// lines, which are stuffed as it goes out. One with many, read, stuffed
// and copied, is just as whole.
func TestRetrSendfileWithCurlAndPoplib(t *testing.T) {
	att, html := attachmentMessage(3<<20), htmlMessage(1<<20)
	in := startPop3d(t, "", "", func(ctx context.Context, st store.Store) {
		mailbox(1, 600<<10)(ctx, st) // message 1 has a dot line every 17 lines
		for _, m := range []string{att, html} {
			if _, err := st.Deliver(ctx, testAddr, strings.NewReader(m)); err != nil {
				panic(err)
			}
		}
	})
	user := testAddr.String() + ":" + testPassword
	url := "pop3://" + in.POP3
	sent, copied := metric(t, in, "pop3_stream_sendfile_total"), metric(t, in, "pop3_stream_copy_total")
	for i, want := range []string{att, html} {
		n := i + 2
		out, err := runCurl(t, "--user", user, fmt.Sprintf("%s/%d", url, n))
		if err != nil || out != want {
			t.Fatalf("curl RETR %d: %v; %d octets, want the %d delivered", n, err, len(out), len(want))
		}
		if got := metric(t, in, "pop3_stream_sendfile_total") - sent; got != float64(i+1) {
			t.Fatalf("pop3_stream_sendfile_total rose by %v after RETR %d, want %d", got, n, i+1)
		}
	}
	out, err := runCurl(t, "--user", user, url+"/1")
	if want := testMessage(1, 600<<10); err != nil || out != want {
		t.Fatalf("curl RETR 1: %v; %d octets, want the %d delivered", err, len(out), len(want))
	}
	if got := metric(t, in, "pop3_stream_sendfile_total") - sent; got != 2 {
		t.Fatalf("a message with many dot lines went out with sendfile (%v)", got)
	}
	if got := metric(t, in, "pop3_stream_copy_total") - copied; got != 1 {
		t.Fatalf("pop3_stream_copy_total rose by %v for the message with many dot lines, want 1", got)
	}
	h, port := hostPort(in)
	for i, want := range []string{att, html} {
		if out := runPy(t, poplibRetrScript, h, port, testAddr.String(), testPassword, fmt.Sprint(i+2)); out != want {
			t.Fatalf("poplib RETR %d: %d octets, want the %d delivered", i+2, len(out), len(want))
		}
	}
}
