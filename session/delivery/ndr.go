package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/store"
)

// maxReportHeaders bounds the original header section copied into a report.
const maxReportHeaders = 64 << 10

// buildReport writes the non-delivery report of an entry: a multipart/report
// (RFC 6522) with report-type=delivery-status, a human-readable part, a
// message/delivery-status part (RFC 3464 §2) and the original header
// section as text/rfc822-headers.
func (s *Service) buildReport(e store.QueueEntry) ([]byte, error) {
	o := s.o()
	headers, err := originalHeaders(e)
	if err != nil {
		return nil, err
	}
	var rb [12]byte
	_, _ = rand.Read(rb[:])
	boundary := "=_report_" + hex.EncodeToString(rb[:])
	now := time.Now()
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }

	w("From: Mail Delivery System <MAILER-DAEMON@%s>", o.Hostname)
	w("To: <%s>", headerSafe(e.Envelope().From))
	w("Subject: Undelivered Mail Returned to Sender")
	w("Date: %s", now.Format(time.RFC1123Z))
	w("Message-ID: <%s.%s@%s>", e.ID(), hex.EncodeToString(rb[:4]), o.Hostname)
	w("Auto-Submitted: auto-replied") // RFC 3834 §5
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;")
	w("\tboundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-encapsulated message.")
	w("")

	// The human-readable part.
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=utf-8")
	w("Content-Transfer-Encoding: 8bit")
	w("")
	w("This is the mail system at host %s.", o.Hostname)
	w("")
	w("Your message could not be delivered to one or more recipients.")
	w("It was not stored in their mailboxes.")
	w("")
	for _, i := range e.Failed() {
		r := e.Rcpts()[i]
		w("<%s>: %s (%s)", e.Envelope().Rcpts[i], r.Reason, r.Status)
	}
	w("")

	// The machine-readable part, RFC 3464 §2.2 and §2.3.
	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", o.Hostname)
	w("X-Pop3-Queue-Id: %s", e.ID())
	w("Arrival-Date: %s", e.Envelope().Received.Format(time.RFC1123Z))
	for _, i := range e.Failed() {
		r := e.Rcpts()[i]
		w("")
		w("Final-Recipient: rfc822; %s", e.Envelope().Rcpts[i])
		w("Action: failed")
		w("Status: %s", r.Status)
		w("Diagnostic-Code: smtp; %s %s %s", replyCode(r.Status), r.Status, r.Reason)
		w("Last-Attempt-Date: %s", now.Format(time.RFC1123Z))
	}
	w("")

	// The original header section, RFC 6522 §3 / RFC 3462.
	w("--%s", boundary)
	w("Content-Type: text/rfc822-headers")
	w("")
	b.Write(headers)
	w("") // the CRLF before the delimiter belongs to it (RFC 2046 §5.1.1)
	w("--%s--", boundary)
	return b.Bytes(), nil
}

// replyCode is the SMTP reply code that goes with an enhanced status.
func replyCode(status string) string {
	switch {
	case strings.HasPrefix(status, "5.2.2"), strings.HasPrefix(status, "5.3.4"):
		return "552"
	case strings.HasPrefix(status, "5.1."):
		return "550"
	case strings.HasPrefix(status, "4."):
		return "451"
	}
	return "554"
}

// originalHeaders returns the queued message's header section, CRLF line
// endings, ending with a line break, at most maxReportHeaders octets (cut
// at a line boundary).
func originalHeaders(e store.QueueEntry) ([]byte, error) {
	f, err := e.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(io.LimitReader(f, maxReportHeaders))
	var out bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] != '\n' {
			break // cut off by the limit or at the end of the file
		}
		if len(line) == 0 || bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
			break
		}
		line = bytes.TrimRight(line, "\r\n")
		out.Write(line)
		out.WriteString("\r\n")
		if err != nil {
			break
		}
	}
	return out.Bytes(), nil
}

// sendRelay sends a report with the null reverse-path through the relay.
func sendRelay(ctx context.Context, relay, hostname, to string, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", relay)
	if err != nil {
		return err
	}
	// go-smtp's client sets its own deadline for each command (5 and 12
	// minutes by default) and clears it afterwards, which would undo a
	// deadline set here: close the connection when ctx ends instead, so
	// that RelayTimeout bounds the whole conversation.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := smtp.NewClient(conn)
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		c.CommandTimeout, c.SubmissionTimeout = d, d
	}
	defer c.Close()
	err = c.Hello(hostname)
	if err == nil {
		err = c.SendMail("", []string{to}, bytes.NewReader(msg))
	}
	if err == nil {
		// The relay took responsibility for the report with its reply to
		// DATA (RFC 5321 §6.1): a failed QUIT must not send it again.
		_ = c.Quit()
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("relay conversation cut off: %w", ctx.Err())
	}
	return err
}

// isPermanent reports whether a relay's answer is a permanent (5yz) refusal.
func isPermanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code < 600
}
