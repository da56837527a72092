package pop3c

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
)

// header returns msg's header and the empty line after it.
func header(msg []byte) []byte {
	return msg[:bytes.Index(msg, []byte("\r\n\r\n"))+4]
}

func TestUnstuffCount(t *testing.T) {
	s := corpus.Default()
	for m := 0; m < 20; m++ {
		msg := s.Message(0, m)
		wire := Stuff(msg)
		for _, small := range []bool{false, true} {
			var src io.Reader = bytes.NewReader(wire)
			size := 4096
			if small {
				src = iotest.OneByteReader(src)
				size = 16 // smaller than most lines: exercises partial slices
			}
			var got bytes.Buffer
			n, err := UnstuffCount(bufio.NewReaderSize(src, size), &got)
			if err != nil || n != int64(len(msg)) || !bytes.Equal(got.Bytes(), msg) {
				t.Fatalf("message %d (small buffer %v): n = %d, err = %v; want %d octets, same bytes", m, small, n, err, len(msg))
			}
		}
	}
	// Every split of stuffed dots and terminators across buffer ends.
	msg := []byte(".\r\n..\r\n.a\r\nb.\r\n.\r\n\r\n..x.\r\n.\r\n")
	wire := Stuff(msg)
	for size := 16; size <= 40; size++ {
		for _, src := range []io.Reader{bytes.NewReader(wire), iotest.HalfReader(bytes.NewReader(wire)), iotest.OneByteReader(bytes.NewReader(wire))} {
			var got bytes.Buffer
			n, err := UnstuffCount(bufio.NewReaderSize(src, size), &got)
			if err != nil || n != int64(len(msg)) || !bytes.Equal(got.Bytes(), msg) {
				t.Fatalf("buffer %d: n = %d, err = %v, got %q; want %q", size, n, err, got.Bytes(), msg)
			}
		}
	}
	cases := []struct {
		wire string
		n    int64
		err  bool
	}{
		{".\r\n", 0, false},
		{"..\r\n.\r\n", 3, false},
		{"...\r\n.\r\n", 4, false},
		{"a\r\n..b\r\n.\r\n", 7, false},
		{"a\r\n", 3, true},                   // no terminator
		{"a\r\n.x\r\n", 6, true},             // ".x" is unstuffed, then EOF
		{"x.\r\n.\r\n", 4, false},            // a dot not at the line start stays
		{".\r\nextra\r\n", 0, false},         // stops at the terminator
		{"a.b.\r\n..c.\r\n.\r\n", 11, false}, // dots inside lines, then a stuffed one
		{"a.\r\n.\r\n", 4, false},            // a dot right before the line end
	}
	for _, c := range cases {
		n, err := UnstuffCount(bufio.NewReader(strings.NewReader(c.wire)), nil)
		if n != c.n || (err != nil) != c.err {
			t.Errorf("UnstuffCount(%q) = %d, %v; want %d, error %v", c.wire, n, err, c.n, c.err)
		}
	}
}

// BenchmarkUnstuffCount reads the RETR scenario's 10 MiB message in wire
// form (about one line in six stuffed) through the client's read buffer.
func BenchmarkUnstuffCount(b *testing.B) {
	wire := Stuff(corpus.Default().BigMessage(0))
	src := bytes.NewReader(wire)
	r := bufio.NewReaderSize(src, ReadBufferSize)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(wire)
		r.Reset(src)
		if n, err := UnstuffCount(r, nil); err != nil || n != corpus.BigSize {
			b.Fatalf("UnstuffCount = %d, %v", n, err)
		}
	}
}

// TestSession runs a full session against a tiny scripted server on
// loopback: greeting, login, STAT, UIDL, LIST, RETR with stuffed lines, QUIT.
func TestSession(t *testing.T) {
	msgs := [][]byte{corpus.Default().Message(1, 0), corpus.Default().Message(1, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "+OK ready\r\n")
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				done <- err
				return
			}
			f := strings.Fields(l)
			switch f[0] {
			case "USER":
				fmt.Fprintf(c, "+OK\r\n")
			case "PASS":
				if f[1] != "secret" {
					fmt.Fprintf(c, "-ERR [AUTH] no\r\n")
					continue
				}
				fmt.Fprintf(c, "+OK in\r\n")
			case "STAT":
				fmt.Fprintf(c, "+OK 2 %d\r\n", len(msgs[0])+len(msgs[1]))
			case "LIST":
				fmt.Fprintf(c, "+OK\r\n1 %d\r\n2 %d\r\n.\r\n", len(msgs[0]), len(msgs[1]))
			case "UIDL":
				fmt.Fprintf(c, "+OK\r\n1 a\r\n2 b\r\n.\r\n")
			case "TOP": // the header only, whatever the line count
				i := int(f[1][0] - '1')
				fmt.Fprintf(c, "+OK\r\n")
				c.Write(Stuff(header(msgs[i])))
			case "RETR":
				i := int(f[1][0] - '1')
				fmt.Fprintf(c, "+OK\r\n")
				c.Write(Stuff(msgs[i]))
			case "QUIT":
				fmt.Fprintf(c, "+OK bye\r\n")
				done <- nil
				return
			}
		}
	}()
	ctx := context.Background()
	c, err := Dial(ctx, ln.Addr().String(), Options{Local: "127.0.0.1", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("u@bench.test", "wrong"); !errors.Is(err, ErrResponse) {
		t.Fatalf("Login with a wrong password: %v, want ErrResponse", err)
	}
	if err := c.Login("u@bench.test", "secret"); err != nil {
		t.Fatal(err)
	}
	n, size, err := c.Stat()
	if err != nil || n != 2 || size != int64(len(msgs[0])+len(msgs[1])) {
		t.Fatalf("Stat = %d %d %v", n, size, err)
	}
	u, err := c.UIDL()
	if err != nil || len(u) != 2 || u[1].UID != "b" {
		t.Fatalf("UIDL = %v %v", u, err)
	}
	l, err := c.List()
	if err != nil || len(l) != 2 {
		t.Fatalf("List = %v %v", l, err)
	}
	for _, e := range l {
		got, err := c.Retr(e.N)
		if err != nil || got != e.Size {
			t.Fatalf("Retr(%d) = %d %v, want %d", e.N, got, err, e.Size)
		}
	}
	head, err := c.Top(2, 0)
	if err != nil || !bytes.Equal(head, header(msgs[1])) {
		t.Fatalf("Top(2, 0) = %q, %v; want the header of message 2", head, err)
	}
	var body bytes.Buffer
	if got, err := c.RetrTo(2, &body); err != nil || got != int64(len(msgs[1])) || !bytes.Equal(body.Bytes(), msgs[1]) {
		t.Fatalf("RetrTo(2) = %d %v, body equal %v", got, err, bytes.Equal(body.Bytes(), msgs[1]))
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
