package pop3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// fileBodies delivers msgs to a new file store's mailbox and returns a
// function that opens message i as a RETR's body.
func fileBodies(t testing.TB, msgs ...string) func(i int) fileBody {
	t.Helper()
	st, err := filestore.Open(filepath.Join(t.TempDir(), "mailroot"), filestore.Options{Node: 1, Argon2: cheapArgon})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	a := store.Address{Mailbox: "bob", Domain: "example.org"}
	if err := st.CreateDomain(ctx, a.Domain); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateMailbox(ctx, a, "secret"); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := st.Deliver(ctx, a, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := st.OpenSession(ctx, a, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	s := &Session{}
	return func(i int) fileBody {
		rc, err := ms.Open(i)
		if err != nil {
			t.Fatal(err)
		}
		size := ms.Messages()[i].Size
		b := &messageBody{r: NewDotReader(io.LimitReader(rc, size)), rc: rc, s: s, wire: rc.(store.WireFile), size: size}
		t.Cleanup(func() { b.Close() })
		return fileBody{b}
	}
}

// socketPair returns a connected pair of stream sockets.
func socketPair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// overMark is filler that takes a message past the size under which the
// file store records no offsets of lines to stuff (a server reads such a
// message with its reply): 320 KiB of lines without a leading dot.
var overMark = strings.Repeat("filler line without a leading dot\r\n", 320<<10/35)

// readAll reads the socket r to its end on a goroutine of its own and
// gives what it read.
func readAll(r int) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		var out bytes.Buffer
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(r, buf)
			if n <= 0 || err != nil {
				break
			}
			out.Write(buf[:n])
		}
		got <- out.Bytes()
	}()
	return got
}

// A message with a few lines that begin with '.' is sendable, and what
// SendFile sends (the file with a '.' more before each such line), then
// the trailer, is what Read gives: the wire form of RFC 1939 section 3.
func TestFileBodySendsStuffedDots(t *testing.T) {
	msgs := []string{
		"Subject: x\r\n.\r\n\r\n.\r\nline\r\n..two dots\r\n" + overMark + ". last\r\n",
		"Subject: none\r\n\r\nno line begins with a dot.\r\n",
		".first line begins with a dot\r\n\r\nbody\r\n" + overMark, // read instead
	}
	open := fileBodies(t, msgs...)
	if open(2).Sendable() {
		t.Error("a message that begins with '.' is sendable: its stuffed dot would go out before sendfile is known to work")
	}
	for i := range msgs[:2] {
		want, err := io.ReadAll(open(i))
		if err != nil {
			t.Fatal(err)
		}
		b := open(i)
		if !b.Sendable() {
			t.Fatalf("message %d is not sendable", i+1)
		}
		if got := b.Size() + int64(len(b.Trailer())); got != int64(len(want)) {
			t.Fatalf("message %d: Size %d and trailer, wire form %d octets", i+1, b.Size(), len(want))
		}
		w, r := socketPair(t)
		got := readAll(r)
		var sent int64
		for sent < b.Size() {
			n, err := b.SendFile(w, 1000)
			if err != nil || n == 0 {
				t.Fatalf("message %d: SendFile after %d octets: %d, %v", i+1, sent, n, err)
			}
			sent += int64(n)
		}
		if n, err := b.SendFile(w, 1000); n != 0 || err != nil {
			t.Fatalf("message %d: SendFile past the end: %d, %v", i+1, n, err)
		}
		unix.Write(w, b.Trailer())
		unix.Shutdown(w, unix.SHUT_WR)
		if g := <-got; !bytes.Equal(g, want) {
			t.Errorf("message %d: sent %q, want %q", i+1, g, want)
		}
	}
}

// Random messages of dots, CRs and LFs (bare ones too, which the store
// normalises), sent with SendFile in random steps and then the trailer,
// give exactly what Read gives: the offsets the store recorded are those
// of the lines DotReader stuffs, and SendFile's count of the file sent
// follows the descriptor's position.
func TestFileBodySendFileMatchesReadRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	msgs := make([]string, 40)
	for i := range msgs {
		m := string(randomMessage(rng, 1+rng.IntN(400)))
		if i%2 == 0 {
			msgs[i] = m + overMark
		} else {
			msgs[i] = overMark + m
		}
	}
	open := fileBodies(t, msgs...)
	sendable := 0
	for i := range msgs {
		want, err := io.ReadAll(open(i))
		if err != nil {
			t.Fatal(err)
		}
		b := open(i)
		if !b.Sendable() {
			continue // more lines to stuff than the store records
		}
		sendable++
		w, r := socketPair(t)
		got := readAll(r)
		for sent := int64(0); sent < b.Size(); {
			step := 1 + rng.IntN(7) // mostly a few octets, now and then up to 64 KiB
			if rng.IntN(4) == 0 {
				step = 1 + rng.IntN(64<<10)
			}
			n, err := b.SendFile(w, step)
			if err != nil || n <= 0 {
				t.Fatalf("message %d: SendFile after %d octets: %d, %v", i+1, sent, n, err)
			}
			sent += int64(n)
		}
		unix.Write(w, b.Trailer())
		unix.Shutdown(w, unix.SHUT_WR)
		if g := <-got; !bytes.Equal(g, want) {
			t.Fatalf("message %d: %d octets sent differ from the %d Read gives", i+1, len(g), len(want))
		}
	}
	if sendable < len(msgs)/2 {
		t.Fatalf("only %d of %d messages sendable", sendable, len(msgs))
	}
}

// A '.' to stuff that finds the socket full is not counted as sent: the
// call reports EAGAIN, and the next one, once there is room, sends it.
func TestFileBodyStuffedDotWaitsForRoom(t *testing.T) {
	b := fileBodies(t, "x\r\n.dot\r\n"+overMark)(0)
	if !b.Sendable() {
		t.Fatal("not sendable")
	}
	w, r := socketPair(t)
	if err := unix.SetNonblock(w, true); err != nil {
		t.Fatal(err)
	}
	if n, err := b.SendFile(w, 100); n != 3 || err != nil {
		t.Fatalf("SendFile of the first line: %d, %v; want 3 octets", n, err)
	}
	fill := make([]byte, 4096)
	filled := 0
	for range 100000 {
		n, err := unix.Write(w, fill)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		filled += n
	}
	if n, err := b.SendFile(w, 100); n != 0 || err != unix.EAGAIN {
		t.Fatalf("SendFile on a full socket: %d, %v; want 0, EAGAIN", n, err)
	}
	filled += 3 // the first line, sent before
	buf := make([]byte, filled)
	for got := 0; got < filled; {
		n, err := unix.Read(r, buf[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if n, err := b.SendFile(w, 100); n != 1 || err != nil {
		t.Fatalf("SendFile with room: %d, %v; want the stuffed dot", n, err)
	}
	if n, err := b.SendFile(w, 100); n != 100 || err != nil {
		t.Fatalf("SendFile of the dot line and on: %d, %v", n, err)
	}
	n, _ := unix.Read(r, buf)
	if got := string(buf[:n]); !strings.HasPrefix(got, "..dot\r\n") || n != 101 {
		t.Fatalf("sent %q", got)
	}
}

// BenchmarkRetrBody10MiB sends a RETR's body of a stored 10 MiB message
// to a TCP loopback socket read by another goroutine, 64 KiB at a time
// (the bench client's read size), as the engine's stream goroutine does:
// with SendFile for a message without or with 100 lines to stuff, and
// read (stuffed) through a 256 KiB buffer and written for one with a line
// to stuff in six (more than the store records).
func BenchmarkRetrBody10MiB(b *testing.B) {
	line := "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
	msg := func(every int) string {
		var m strings.Builder
		for i := 0; m.Len() < 10<<20; i++ {
			if every > 0 && i%every == 0 {
				m.WriteString(". a line that begins with a dot\r\n")
			}
			m.WriteString(line)
		}
		return m.String()
	}
	lines := (10 << 20) / len(line)
	open := fileBodies(b, msg(0), msg(lines/100), msg(6))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	for i, name := range []string{"sendfile-clean", "sendfile-100-dots", "copy-dotted"} {
		b.Run(name, func(b *testing.B) {
			fb := open(i)
			b.SetBytes(fb.size)
			b.ReportAllocs()
			buf := make([]byte, 256<<10)
			for b.Loop() {
				fb := open(i)
				if !fb.Sendable() {
					if _, err := io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{fb}, buf); err != nil {
						b.Fatal(err)
					}
					continue
				}
				left := fb.Size()
				var serr error
				if err := raw.Write(func(fd uintptr) bool {
					for left > 0 {
						n, err := fb.SendFile(int(fd), int(min(left, 1<<20)))
						left -= int64(n)
						if err == unix.EAGAIN {
							return false
						}
						if err != nil || n == 0 {
							serr = fmt.Errorf("%d left: %v", left, err)
							return true
						}
					}
					return true
				}); err != nil || serr != nil {
					b.Fatal(err, serr)
				}
				fb.Close()
			}
		})
	}
}
