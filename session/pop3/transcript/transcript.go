// Package transcript runs POP3 conversations written as text against a
// session: in-process through Local, or over a real connection (net.Conn on
// loopback) against a running server.
//
// A transcript is a text file of lines:
//
//	# comment (blank lines are ignored too)
//	! directive words...   setup for the harness (see Directives); Run skips them
//	C: text                the client sends text and CRLF
//	C+ text                the client sends text without CRLF
//	S: text                the server's next line is exactly text (CRLF stripped)
//	S~ regexp              the server's next line matches regexp (anchored at both ends)
//	S!                     the server closes the connection now
//
// In C and S lines, \\ \r \n \t and \xNN are escapes. Consecutive C lines
// are written in one write (pipelining, RFC 2449 section 6.6). Two
// templates in C lines compute responses from what the server said:
//
//	{{apop PASSWORD}}      the APOP digest (RFC 1939 section 7) of the greeting's timestamp
//	{{cram USER PASSWORD}} the base64 CRAM-MD5 response (RFC 2195) to the last "+ " challenge
package transcript

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Kind is the kind of a Step.
type Kind int

// Step kinds.
const (
	Client      Kind = iota + 1 // send Text + CRLF
	ClientRaw                   // send Text as is
	Server                      // expect the line Text
	ServerMatch                 // expect a line matching the regexp Text
	ServerClose                 // expect the connection to close
	Directive                   // harness setup; Text holds the words after "!"
)

// Step is one line of a transcript.
type Step struct {
	Kind Kind
	Text string
	Line int // line number in the transcript, for messages
	re   *regexp.Regexp
}

// MaxTranscriptLine bounds one line of a transcript file.
const MaxTranscriptLine = 1 << 20

// Parse reads a transcript.
func Parse(r io.Reader) ([]Step, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxTranscriptLine)
	var steps []Step
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		var st Step
		st.Line = n
		switch {
		case l == "S!":
			st.Kind = ServerClose
		case strings.HasPrefix(l, "!"):
			st.Kind = Directive
			st.Text = strings.TrimSpace(l[1:])
		case len(l) >= 2 && (l[:2] == "C:" || l[:2] == "C+" || l[:2] == "S:" || l[:2] == "S~"):
			text := strings.TrimPrefix(l[2:], " ")
			switch l[:2] {
			case "C:":
				st.Kind = Client
			case "C+":
				st.Kind = ClientRaw
			case "S:":
				st.Kind = Server
			case "S~":
				st.Kind = ServerMatch
			}
			if st.Kind == ServerMatch {
				re, err := regexp.Compile("^(?:" + text + ")$")
				if err != nil {
					return nil, fmt.Errorf("line %d: bad regexp: %w", n, err)
				}
				st.re = re
				st.Text = text
				break
			}
			u, err := unescape(text)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			st.Text = u
		default:
			return nil, fmt.Errorf("line %d: %q: a line starts with C:, C+, S:, S~, S! or ! and then text", n, l)
		}
		steps = append(steps, st)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return steps, nil
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New(`trailing \`)
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'x':
			if i+3 > len(s) {
				return "", errors.New(`short \x escape`)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf(`bad \x escape %q`, s[i-1:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf(`unknown escape \%c`, s[i])
		}
	}
	return b.String(), nil
}

// Directives returns the words of the transcript's "!" lines.
func Directives(steps []Step) [][]string {
	var out [][]string
	for _, s := range steps {
		if s.Kind == Directive {
			out = append(out, strings.Fields(s.Text))
		}
	}
	return out
}

// StepTimeout bounds the wait for one server line when conn supports read
// deadlines.
const StepTimeout = 10 * time.Second

type deadliner interface{ SetReadDeadline(time.Time) error }

var (
	timestampRE = regexp.MustCompile(`<[^<>]*@[^<>]*>`)
	templateRE  = regexp.MustCompile(`\{\{(apop|cram) ([^{}]*)\}\}`)
)

// Run plays steps against conn: it writes the client lines and checks the
// server lines, failing t with the transcript line number on a mismatch.
// It stops at the first failure.
func Run(t testing.TB, conn io.ReadWriter, steps []Step) {
	t.Helper()
	if err := Play(conn, steps); err != nil {
		t.Fatal(err)
	}
}

// Play is Run without a testing.TB: it returns the first mismatch.
func Play(conn io.ReadWriter, steps []Step) error {
	br := bufio.NewReader(conn)
	var (
		pending   bytes.Buffer
		timestamp string // from the greeting, for {{apop}}
		challenge string // last "+ " continuation, decoded, for {{cram}}
		first     = true
		lastLine  int
	)
	flush := func() error {
		if pending.Len() == 0 {
			return nil
		}
		_, err := conn.Write(pending.Bytes())
		pending.Reset()
		if err != nil {
			return fmt.Errorf("line %d: write: %w", lastLine, err)
		}
		return nil
	}
	readLine := func() (string, error) {
		if d, ok := conn.(deadliner); ok {
			d.SetReadDeadline(time.Now().Add(StepTimeout))
		}
		l, err := br.ReadString('\n')
		if err != nil {
			if l != "" {
				return l, fmt.Errorf("partial line %q: %w", l, err)
			}
			return "", err
		}
		if !strings.HasSuffix(l, "\r\n") {
			return l, fmt.Errorf("line %q does not end with CRLF", l)
		}
		return strings.TrimSuffix(l, "\r\n"), nil
	}
	for _, st := range steps {
		switch st.Kind {
		case Directive:
			continue
		case Client, ClientRaw:
			text, err := expand(st.Text, timestamp, challenge)
			if err != nil {
				return fmt.Errorf("line %d: %w", st.Line, err)
			}
			pending.WriteString(text)
			if st.Kind == Client {
				pending.WriteString("\r\n")
			}
			lastLine = st.Line
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if st.Kind == ServerClose {
			if d, ok := conn.(deadliner); ok {
				d.SetReadDeadline(time.Now().Add(StepTimeout))
			}
			b, err := br.ReadByte()
			if err == nil {
				rest, _ := br.Peek(br.Buffered())
				return fmt.Errorf("line %d: want the connection closed, got more data %q", st.Line, append([]byte{b}, rest...))
			}
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				continue
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("line %d: want the connection closed, it stayed open", st.Line)
			}
			return fmt.Errorf("line %d: want the connection closed: %w", st.Line, err)
		}
		got, err := readLine()
		if err != nil {
			return fmt.Errorf("line %d: want %q: %w", st.Line, st.Text, err)
		}
		if first {
			timestamp = timestampRE.FindString(got)
			first = false
		}
		if strings.HasPrefix(got, "+ ") {
			if b, err := base64.StdEncoding.DecodeString(got[2:]); err == nil {
				challenge = string(b)
			}
		}
		switch st.Kind {
		case Server:
			if got != st.Text {
				return fmt.Errorf("line %d: server said %q, want %q", st.Line, got, st.Text)
			}
		case ServerMatch:
			if !st.re.MatchString(got) {
				return fmt.Errorf("line %d: server said %q, want a match of %q", st.Line, got, st.Text)
			}
		}
	}
	return flush()
}

func expand(text, timestamp, challenge string) (string, error) {
	var err error
	out := templateRE.ReplaceAllStringFunc(text, func(m string) string {
		sub := templateRE.FindStringSubmatch(m)
		switch sub[1] {
		case "apop":
			if timestamp == "" {
				err = errors.New("{{apop}}: the greeting had no timestamp")
				return m
			}
			h := md5.Sum([]byte(timestamp + sub[2]))
			return hex.EncodeToString(h[:])
		default:
			user, pass, ok := strings.Cut(sub[2], " ")
			if !ok {
				err = errors.New("{{cram USER PASSWORD}} needs two words")
				return m
			}
			mac := hmac.New(md5.New, []byte(pass))
			mac.Write([]byte(challenge))
			return base64.StdEncoding.EncodeToString([]byte(user + " " + hex.EncodeToString(mac.Sum(nil))))
		}
	})
	return out, err
}
