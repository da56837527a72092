// Package corpus generates the bench harness's mail corpus: deterministic
// (seeded) RFC 5322 messages with CRLF line endings, realistic sizes and
// lines that start with '.', so that every server under test must dot-stuff
// (RFC 1939 section 3) and the client must unstuff.
//
// Sizes: about 90% of messages are between 2 KB and 20 KB (log-uniform),
// the rest form a tail from 20 KB to 1 MB (log-uniform); the mean is about
// 32 KB, so a mailbox of 50 messages holds about 1.6 MB.
//
// Each big mailbox holds two messages of BigSize octets: message 1
// (BigTextMsg) is plain text in which about one line in six starts with
// '.', the worst case for dot-stuffing; message 2 (BigAttachmentMsg) is
// what a large message usually is, a MIME message with a base64
// attachment, in which no line starts with '.'.
//
// The same corpus is written as a Maildir for the peer server (WriteMaildir)
// and imported into our store (Import, through the Mail Storage Access API).
package corpus

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// Size limits of generated messages, in octets.
const (
	MinSize      = 2 << 10  // smallest ordinary message
	BodyMax      = 20 << 10 // largest message of the body of the distribution
	TailMax      = 1 << 20  // largest message of the tail
	TailFraction = 0.098    // share of messages in the tail: gives a mean near 32 KB
	BigSize      = 10 << 20 // the RETR throughput message: 10 MiB
)

// Spec describes a corpus.
type Spec struct {
	Seed     uint64 // the same seed gives the same bytes
	Domain   string // e.g. "bench.test"
	Users    int    // mailboxes user001..userNNN, each with PerUser messages
	PerUser  int    // messages per mailbox (50 for the goal's full session)
	Big      int    // mailboxes big01..bigNN with two BigSize messages each (RETR scenarios)
	Idle     int    // empty mailboxes idle00001.. for the logged-in idle scenario
	Password string // every mailbox's password
}

// Default is the corpus the comparison uses.
func Default() Spec {
	return Spec{Seed: 1939, Domain: "bench.test", Users: 64, PerUser: 50, Big: 4, Idle: 0, Password: "benchpass"}
}

// Validate checks a spec.
func (s Spec) Validate() error {
	switch {
	case s.Domain == "":
		return fmt.Errorf("corpus: domain is empty")
	case s.Users < 0 || s.Users > 999:
		return fmt.Errorf("corpus: users = %d, want 0..999", s.Users)
	case s.PerUser < 0 || s.PerUser > 100000:
		return fmt.Errorf("corpus: messages per user = %d, want 0..100000", s.PerUser)
	case s.Big < 0 || s.Big > 99:
		return fmt.Errorf("corpus: big mailboxes = %d, want 0..99", s.Big)
	case s.Idle < 0 || s.Idle > 99999:
		return fmt.Errorf("corpus: idle mailboxes = %d, want 0..99999", s.Idle)
	case s.Password == "":
		return fmt.Errorf("corpus: password is empty")
	}
	return store.ValidateDomain(s.Domain)
}

// User returns the name of ordinary mailbox i (0-based).
func User(i int) string { return fmt.Sprintf("user%03d", i+1) }

// BigUser returns the name of big mailbox i (0-based).
func BigUser(i int) string { return fmt.Sprintf("big%02d", i+1) }

// SinkUser is the mailbox that the SMTP scenario delivers to, so that
// deliveries never change the mailboxes that sessions read.
const SinkUser = "sink"

// IdleUser returns the name of idle mailbox i (0-based).
func IdleUser(i int) string { return fmt.Sprintf("idle%05d", i+1) }

// rng returns the generator of one message: independent of the others, so
// any message can be made alone.
func (s Spec) rng(user, msg int) *rand.Rand {
	return rand.New(rand.NewPCG(s.Seed, uint64(user)<<32|uint64(msg)))
}

// Size returns the size in octets of message msg of user (0-based).
func (s Spec) Size(user, msg int) int {
	return sizeFrom(s.rng(user, msg))
}

func sizeFrom(r *rand.Rand) int {
	lo, hi := float64(MinSize), float64(BodyMax)
	if r.Float64() < TailFraction {
		lo, hi = float64(BodyMax), float64(TailMax)
	}
	return int(math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo))))
}

// Message returns message msg of user (0-based): CRLF lines, exactly
// Size(user, msg) octets.
func (s Spec) Message(user, msg int) []byte {
	r := s.rng(user, msg)
	size := sizeFrom(r)
	return build(r, size, fmt.Sprintf("%s@%s", User(user), s.Domain), msg)
}

// Message numbers (RFC 1939, 1-based) of the two messages of every big
// mailbox.
const (
	BigTextMsg       = 1 // BigMessage: text, about one line in six dot-stuffed
	BigAttachmentMsg = 2 // AttachmentMessage: MIME with a base64 attachment
)

// BigMessage returns the BigSize text message of big mailbox i (its
// message BigTextMsg): about one line in six starts with '.'.
func (s Spec) BigMessage(i int) []byte {
	r := rand.New(rand.NewPCG(s.Seed, 1<<62|uint64(i)))
	return build(r, BigSize, fmt.Sprintf("%s@%s", BigUser(i), s.Domain), 0)
}

// AttachmentMessage returns the BigSize MIME message of big mailbox i (its
// message BigAttachmentMsg): a short text part and a base64 attachment of
// pseudo-random bytes in 76-character lines. No line starts with '.'.
func (s Spec) AttachmentMessage(i int) []byte {
	r := rand.New(rand.NewPCG(s.Seed, 1<<60|uint64(i)))
	return buildAttachment(r, BigSize, fmt.Sprintf("%s@%s", BigUser(i), s.Domain), 1)
}

// BigMessages returns the messages of big mailbox i in mailbox order.
func (s Spec) BigMessages(i int) [][]byte {
	return [][]byte{s.BigMessage(i), s.AttachmentMessage(i)}
}

var words = []string{
	"the", "mail", "server", "message", "report", "quarterly", "meeting", "agenda", "budget", "review",
	"please", "find", "attached", "regards", "thanks", "update", "project", "status", "schedule", "delivery",
	"customer", "invoice", "account", "notice", "office", "team", "week", "draft", "final", "version",
}

// build writes headers and a body of text lines; about one line in twelve
// begins with '.', some are a lone "." or "..", and the body is padded so
// the whole message is exactly size octets and ends with CRLF.
func build(r *rand.Rand, size int, to string, n int) []byte {
	var b bytes.Buffer
	b.Grow(size)
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(300*24*3600)) * time.Second)
	fmt.Fprintf(&b, "Return-Path: <sender%d@example.org>\r\n", r.IntN(1000))
	fmt.Fprintf(&b, "From: Sender %d <sender%d@example.org>\r\n", r.IntN(1000), r.IntN(1000))
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: %s %s %d\r\n", words[r.IntN(len(words))], words[r.IntN(len(words))], n)
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%016x.%d@example.org>\r\n", r.Uint64(), n)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	line := make([]byte, 0, 80)
	for {
		left := size - b.Len()
		if left <= 100 { // a line is at most about 90 octets: room for the pad line
			break
		}
		line = line[:0]
		switch k := r.IntN(24); {
		case k == 0:
			line = append(line, '.')
		case k == 1:
			line = append(line, ".."...)
		case k == 2:
			line = append(line, ". leading dot "...)
		case k == 3:
			line = append(line, ".hidden "...)
		}
		target := 20 + r.IntN(57)
		if len(line) > 0 && line[len(line)-1] == '.' && r.IntN(2) == 0 {
			target = len(line)
		}
		for len(line) < target {
			if len(line) > 0 && line[len(line)-1] != ' ' && line[len(line)-1] != '.' {
				line = append(line, ' ')
			}
			line = append(line, words[r.IntN(len(words))]...)
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	// Pad: one last line of filler then CRLF, exactly to size.
	left := size - b.Len()
	for i := 0; i < left-2; i++ {
		b.WriteByte('a' + byte(i%26))
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// Base64LineLen is the length of an attachment's base64 lines, CRLF not
// counted (RFC 2045 section 6.8 allows at most 76).
const Base64LineLen = 76

// MinAttachmentSize is the smallest size buildAttachment can fill.
const MinAttachmentSize = 2 << 10

// buildAttachment writes a multipart/mixed message of exactly size octets
// (at least MinAttachmentSize) with CRLF lines: headers, a short text part,
// an application/octet-stream part in base64 of pseudo-random bytes, and
// the closing boundary. A filler line at the end of the text part takes up
// what the base64 lines (a multiple of 4 characters, so no '=' padding)
// leave over. No line starts with '.'.
func buildAttachment(r *rand.Rand, size int, to string, n int) []byte {
	if size < MinAttachmentSize {
		panic(fmt.Sprintf("corpus: attachment message of %d octets, want at least %d", size, MinAttachmentSize))
	}
	var head bytes.Buffer
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(300*24*3600)) * time.Second)
	boundary := fmt.Sprintf("=_bench_%016x", r.Uint64())
	name := fmt.Sprintf("%s-%d.bin", words[r.IntN(len(words))], r.IntN(10000))
	fmt.Fprintf(&head, "Return-Path: <sender%d@example.org>\r\n", r.IntN(1000))
	fmt.Fprintf(&head, "From: Sender %d <sender%d@example.org>\r\n", r.IntN(1000), r.IntN(1000))
	fmt.Fprintf(&head, "To: <%s>\r\n", to)
	fmt.Fprintf(&head, "Subject: %s %s %d\r\n", words[r.IntN(len(words))], words[r.IntN(len(words))], n)
	fmt.Fprintf(&head, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&head, "Message-ID: <%016x.%d@example.org>\r\n", r.Uint64(), n)
	fmt.Fprintf(&head, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	head.WriteString("This is a multi-part message in MIME format.\r\n\r\n")
	fmt.Fprintf(&head, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", boundary)
	for k := 3 + r.IntN(5); k > 0; k-- {
		line := []byte(words[r.IntN(len(words))])
		for target := 20 + r.IntN(57); len(line) < target; {
			line = append(line, ' ')
			line = append(line, words[r.IntN(len(words))]...)
		}
		head.Write(line)
		head.WriteString("\r\n")
	}
	var part bytes.Buffer // after the filler line
	fmt.Fprintf(&part, "\r\n--%s\r\nContent-Type: application/octet-stream; name=\"%s\"\r\n", boundary, name)
	fmt.Fprintf(&part, "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"%s\"\r\n\r\n", name)
	closing := "--" + boundary + "--\r\n"

	// room: what the filler line (at least its CRLF) and the base64 lines
	// share. The base64 takes the most characters d, a multiple of 4,
	// whose lines fit; the filler line takes the rest.
	room := size - head.Len() - part.Len() - len(closing) - 2
	lines := func(d int) int { return d + 2*((d+Base64LineLen-1)/Base64LineLen) }
	d := room * Base64LineLen / (Base64LineLen + 2) / 4 * 4
	for lines(d+4) <= room {
		d += 4
	}
	for d > 0 && lines(d) > room {
		d -= 4
	}
	raw := make([]byte, d/4*3)
	for k := 0; k < len(raw); k += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && k+j < len(raw); j++ {
			raw[k+j] = byte(v >> (8 * j))
		}
	}
	enc := make([]byte, d)
	base64.StdEncoding.Encode(enc, raw)

	var b bytes.Buffer
	b.Grow(size)
	b.Write(head.Bytes())
	for k := 0; k < room-lines(d); k++ {
		b.WriteByte('a' + byte(k%26))
	}
	b.WriteString("\r\n")
	b.Write(part.Bytes())
	for len(enc) > 0 {
		k := min(Base64LineLen, len(enc))
		b.Write(enc[:k])
		b.WriteString("\r\n")
		enc = enc[k:]
	}
	b.WriteString(closing)
	return b.Bytes()
}

// TotalBytes returns the octets in the ordinary mailboxes.
func (s Spec) TotalBytes() int64 {
	var t int64
	for u := 0; u < s.Users; u++ {
		for m := 0; m < s.PerUser; m++ {
			t += int64(s.Size(u, m))
		}
	}
	return t
}

// LF converts CRLF line endings to LF (the Maildir convention).
func LF(msg []byte) []byte { return bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")) }

// WriteMaildir writes the corpus under root as root/<mailbox>/Maildir/{cur,new,tmp}
// with LF line endings and ",S=<size>,W=<CRLF size>" in each file name, as
// a Maildir server stores it. Messages go to cur/ and are marked seen.
func (s Spec) WriteMaildir(root string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	write := func(mbox string, msgs func(yield func(i int, msg []byte) error) error) error {
		md := filepath.Join(root, mbox, "Maildir")
		for _, d := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(md, d), 0o755); err != nil {
				return fmt.Errorf("cannot create maildir: %w", err)
			}
		}
		return msgs(func(i int, msg []byte) error {
			lf := LF(msg)
			name := fmt.Sprintf("%d.M%dP1.bench,S=%d,W=%d:2,S", 1700000000+i, i, len(lf), len(msg))
			if err := os.WriteFile(filepath.Join(md, "cur", name), lf, 0o644); err != nil {
				return fmt.Errorf("cannot write %s: %w", name, err)
			}
			return nil
		})
	}
	for u := 0; u < s.Users; u++ {
		if err := write(User(u), func(y func(int, []byte) error) error {
			for m := 0; m < s.PerUser; m++ {
				if err := y(m, s.Message(u, m)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	for i := 0; i < s.Big; i++ {
		if err := write(BigUser(i), func(y func(int, []byte) error) error {
			for m, msg := range s.BigMessages(i) {
				if err := y(m, msg); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	for i := 0; i < s.Idle; i++ {
		if err := write(IdleUser(i), func(func(int, []byte) error) error { return nil }); err != nil {
			return err
		}
	}
	if err := write(SinkUser, func(func(int, []byte) error) error { return nil }); err != nil {
		return err
	}
	return nil
}

// Mailboxes lists every mailbox name of the corpus: ordinary, big, idle,
// then the SMTP sink.
func (s Spec) Mailboxes() []string {
	var out []string
	for u := 0; u < s.Users; u++ {
		out = append(out, User(u))
	}
	for i := 0; i < s.Big; i++ {
		out = append(out, BigUser(i))
	}
	for i := 0; i < s.Idle; i++ {
		out = append(out, IdleUser(i))
	}
	return append(out, SinkUser)
}

// Importer is the part of the Mail Storage Access API that Import needs.
type Importer interface {
	store.Domains
	store.Mailboxes
	store.Delivery
}

// Import creates the domain and mailboxes in st and delivers every message.
// progress, when not nil, is called after each mailbox.
func (s Spec) Import(ctx context.Context, st Importer, progress func(done, total int)) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := st.CreateDomain(ctx, s.Domain); err != nil {
		return fmt.Errorf("cannot create domain %s: %w", s.Domain, err)
	}
	names := s.Mailboxes()
	for k, name := range names {
		addr := store.Address{Mailbox: name, Domain: s.Domain}
		if err := st.CreateMailbox(ctx, addr, s.Password); err != nil {
			return fmt.Errorf("cannot create mailbox %s: %w", addr, err)
		}
		var msgs [][]byte
		switch {
		case k < s.Users:
			for m := 0; m < s.PerUser; m++ {
				msgs = append(msgs, s.Message(k, m))
			}
		case k < s.Users+s.Big:
			msgs = s.BigMessages(k - s.Users)
		}
		for _, msg := range msgs {
			if _, err := st.Deliver(ctx, addr, bytes.NewReader(msg)); err != nil {
				return fmt.Errorf("cannot deliver to %s: %w", addr, err)
			}
		}
		if progress != nil {
			progress(k+1, len(names))
		}
	}
	return nil
}

// WriteTo writes message msg of user to w (for pop3ctl deliver and SMTP).
func (s Spec) WriteTo(w io.Writer, user, msg int) error {
	_, err := w.Write(s.Message(user, msg))
	return err
}

// SMTPMessage returns a message of exactly size octets for the SMTP
// scenario, numbered n.
func (s Spec) SMTPMessage(n, size int) []byte {
	r := rand.New(rand.NewPCG(s.Seed, 1<<61|uint64(n)))
	return build(r, size, "smtp@"+s.Domain, n)
}
