package transcript

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/session"
)

// echoSession answers "+OK <line>" and closes on "BYE"; the greeting holds
// RFC 1939's APOP example timestamp.
type echoSession struct{ closed int }

func (e *echoSession) Greeting() session.Reply {
	return session.Reply{Out: []byte("+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n")}
}
func (e *echoSession) Inline([]byte) bool { return true }
func (e *echoSession) Handle(l []byte) session.Reply {
	if string(l) == "BYE" {
		return session.Reply{Out: []byte("+OK bye\r\n"), Close: true}
	}
	if string(l) == "CHAL" {
		// base64 of RFC 2195's example challenge
		return session.Reply{Out: []byte("+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n")}
	}
	return session.Reply{Out: []byte("+OK " + string(l) + "\r\n")}
}
func (e *echoSession) LineTooLong() session.Reply { return session.Reply{Out: []byte("-ERR long\r\n")} }
func (e *echoSession) SetTLS()                    {}
func (e *echoSession) Close()                     { e.closed++ }

const sample = `# comment
! opt 1 2

S~ \+OK ready <.*>
C: hello\x41\\
S: +OK helloA\\
C: APOP mrose {{apop tanstaaf}}
S: +OK APOP mrose c4c9334bac560ecc979e58001b3e22fb
C: CHAL
S~ \+ .*
C: {{cram tim tanstaaftanstaaf}}
S: +OK dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
C: one
C: two
S: +OK one
S: +OK two
C+ par
C: tial
S: +OK partial
C: BYE
S: +OK bye
S!
`

func TestParse(t *testing.T) {
	steps, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if d := Directives(steps); len(d) != 1 || strings.Join(d[0], ",") != "opt,1,2" {
		t.Fatalf("Directives = %q", d)
	}
	if steps[2].Kind != Client || steps[2].Text != `helloA\` || steps[2].Line != 5 {
		t.Fatalf("step 2 = %+v", steps[2])
	}
	for _, bad := range []string{"X: foo", "S~ (", `C: \q`, `C: \x4`, `C: \xzz`, `C: a\`} {
		if _, err := Parse(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("Parse(%q) = %v, want an error naming line 1", bad, err)
		}
	}
}

func TestPlayLocal(t *testing.T) {
	steps, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	e := &echoSession{}
	if err := Play(NewLocal(e), steps); err != nil {
		t.Fatal(err)
	}
	if e.closed != 1 {
		t.Fatalf("session closed %d times, want 1", e.closed)
	}
	for _, tc := range []struct{ script, want string }{
		{"S: +OK nope", "line 1: server said"},
		{"S~ \\+OK ready <.*>\nS: +OK x", "line 2: want \"+OK x\""},
		{"S~ .*\nS!", "line 2: want the connection closed"},
		{"S~ .*\nC: BYE\nS!", "line 3: want the connection closed, got more data"},
	} {
		steps, err := Parse(strings.NewReader(tc.script))
		if err != nil {
			t.Fatal(err)
		}
		err = Play(NewLocal(&echoSession{}), steps)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Play(%q) = %v, want an error containing %q", tc.script, err, tc.want)
		}
	}
}

func TestLocalLineTooLong(t *testing.T) {
	l := NewLocal(&echoSession{})
	l.MaxLine = 10
	l.Write([]byte(strings.Repeat("x", 30)))
	l.Write([]byte("yyy\r\nok\r\n"))
	out := make([]byte, 200)
	n, _ := l.Read(out)
	if got := string(out[:n]); got != "+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n-ERR long\r\n+OK ok\r\n" {
		t.Fatalf("output %q", got)
	}
}

// TestPlayOverTCP runs the sample over loopback: a server goroutine bridges
// the socket to a Local.
func TestPlayOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		l := NewLocal(&echoSession{})
		flush := func() bool {
			buf := make([]byte, 4096)
			for {
				n, err := l.Read(buf)
				if n > 0 {
					c.Write(buf[:n])
				}
				if err != nil {
					return err == ErrNoReply
				}
			}
		}
		r := bufio.NewReader(c)
		for flush() {
			b := make([]byte, 4096)
			n, err := r.Read(b)
			if err != nil {
				return
			}
			l.Write(b[:n])
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	steps, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	Run(t, c, steps)
	c.Close()
	wg.Wait()
}
