package tlsconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "tlsconn-test") }

func TestMain(m *testing.M) {
	code := m.Run()
	if certDir != "" {
		os.RemoveAll(certDir)
	}
	os.Exit(code)
}

// lineServer answers "ECHO x" with "x", "GET n" with n pattern octets
// written in 64 KiB chunks from a worker goroutine, and "SUM n" by reading
// n octets and answering their SHA-256.
func lineServer() func(*loopServer, []byte) {
	var line []byte
	var sumLeft int
	h := sha256.New()
	return func(s *loopServer, p []byte) {
		for len(p) > 0 {
			if sumLeft > 0 {
				n := min(sumLeft, len(p))
				h.Write(p[:n])
				p, sumLeft = p[n:], sumLeft-n
				if sumLeft == 0 {
					s.c.WritePlain(fmt.Appendf(nil, "%x\n", h.Sum(nil)), nil)
					h.Reset()
				}
				continue
			}
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				line = append(line, p...)
				return
			}
			line = append(line, p[:i]...)
			p = p[i+1:]
			cmd, arg, _ := strings.Cut(strings.TrimRight(string(line), "\r"), " ")
			line = line[:0]
			switch cmd {
			case "ECHO":
				s.c.WritePlain([]byte(arg+"\n"), nil)
			case "GET":
				n, _ := strconv.Atoi(arg)
				go func() {
					chunk := make([]byte, 64<<10)
					for off := 0; off < n; off += len(chunk) {
						k := min(len(chunk), n-off)
						for j := range chunk[:k] {
							chunk[j] = byte((off + j) % 251)
						}
						if err := s.c.WritePlain(chunk[:k], nil); err != nil {
							return
						}
					}
				}()
			case "SUM":
				sumLeft, _ = strconv.Atoi(arg)
			case "BYE":
				s.c.Close()
			}
		}
	}
}

func dialTLS(t *testing.T, chunk int, maxVer uint16) (*tls.Conn, *loopServer) {
	t.Helper()
	cs, ss := tcpPair(t)
	srv := startLoopServer(t, ss, serverConfig(t), chunk, 10*time.Second, lineServer())
	c := tls.Client(cs, clientConfig(t, maxVer))
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-srv.hsErr; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return c, srv
}

func TestRealClientEcho(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			c, srv := dialTLS(t, 0, v)
			if got := srv.c.ConnectionState().Version; got != v {
				t.Errorf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(v))
			}
			r := bufio.NewReader(c)
			// Pipelined: three commands in one write.
			if _, err := c.Write([]byte("ECHO one\r\nECHO two\r\nECHO three\r\n")); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"one\n", "two\n", "three\n"} {
				got, err := r.ReadString('\n')
				if err != nil || got != want {
					t.Fatalf("read %q, %v; want %q", got, err, want)
				}
			}
			// close_notify reaches the client as io.EOF.
			c.Write([]byte("BYE\r\n"))
			if b, err := r.ReadByte(); err != io.EOF {
				t.Errorf("after Close the client read %q, %v; want io.EOF", b, err)
			}
		})
	}
}

// TestByteAtATime feeds the server one octet per Feed, handshake included:
// crypto/tls must keep partial records across ErrWouldBlock.
func TestByteAtATime(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			c, _ := dialTLS(t, 1, v)
			r := bufio.NewReader(c)
			payload := bytes.Repeat([]byte("0123456789abcdef"), 2048) // 32 KiB: two full records
			fmt.Fprintf(c, "ECHO hello\r\nSUM %d\r\n", len(payload))
			c.Write(payload)
			want := sha256.Sum256(payload)
			for _, w := range []string{"hello\n", fmt.Sprintf("%x\n", want)} {
				got, err := r.ReadString('\n')
				if err != nil || got != w {
					t.Fatalf("read %q, %v; want %q", got, err, w)
				}
			}
		})
	}
}

// TestByteAtATimeMemory drives both sides in memory one octet at a time.
func TestByteAtATimeMemory(t *testing.T) {
	p := newMemPair(t, serverConfig(t), clientConfig(t, 0), 1)
	p.handshake(t)
	msg := bytes.Repeat([]byte("x"), 20000)
	if err := p.cli.WritePlain(msg, nil); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(p.srv)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("server read %d octets, %v; want %d", len(got), err, len(msg))
	}
	if p.feedErr != nil {
		t.Fatal(p.feedErr)
	}
}

func TestLargeTransfers(t *testing.T) {
	c, _ := dialTLS(t, 0, 0)
	const down = 8 << 20
	const up = 2 << 20
	fmt.Fprintf(c, "GET %d\r\n", down)
	buf := make([]byte, down)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	for i, b := range buf {
		if b != byte(i%251) {
			t.Fatalf("octet %d = %d, want %d", i, b, i%251)
		}
	}
	payload := make([]byte, up)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	fmt.Fprintf(c, "SUM %d\r\n", up)
	go c.Write(payload)
	line, err := bufio.NewReader(c).ReadString('\n')
	if want := fmt.Sprintf("%x\n", sha256.Sum256(payload)); err != nil || line != want {
		t.Fatalf("SUM = %q, %v; want %q", line, err, want)
	}
}

// TestPlaintextAfterFinished: data that arrives with the client's last
// handshake flight is decrypted after Handshake without another Feed.
func TestPlaintextAfterFinished(t *testing.T) {
	// Run the client in memory and hold its bytes until the client is done.
	var toSrv bytes.Buffer
	var srv, cli *Conn
	srv = New(Options{Config: serverConfig(t), Output: func(b []byte, done func(error)) error {
		cli.Feed(b)
		return nil
	}})
	cli = New(Options{Config: clientConfig(t, tls.VersionTLS13), Client: true, Output: func(b []byte, done func(error)) error {
		if !cli.HandshakeComplete() && toSrv.Len() == 0 {
			srv.Feed(b) // ClientHello goes straight through
			return nil
		}
		toSrv.Write(b) // Finished and what follows is held
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Handshake(ctx) }()
	if err := cli.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cli.WritePlain([]byte("CAPA\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Feed(toSrv.Bytes()); err != nil { // one packet: Finished + data
		t.Fatal(err)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	got, err := readAll(srv)
	if err != nil || string(got) != "CAPA\r\n" {
		t.Fatalf("after the handshake ReadPlain gave %q, %v", got, err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	for _, name := range []string{"silent", "partial hello"} {
		t.Run(name, func(t *testing.T) {
			cs, ss := tcpPair(t)
			start := time.Now()
			srv := startLoopServer(t, ss, serverConfig(t), 0, 200*time.Millisecond, nil)
			if name == "partial hello" {
				cs.Write([]byte{22, 3, 1, 0, 200, 1, 0}) // a ClientHello header, then nothing
			}
			select {
			case err := <-srv.hsErr:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Handshake = %v, want context.DeadlineExceeded", err)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("handshake gave up after %v", d)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Handshake did not return")
			}
			// The server closed the socket.
			cs.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, cs); err != nil {
				t.Errorf("client read after timeout: %v, want EOF", err)
			}
			if _, err := srv.c.Feed([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("Feed after timeout = %v, want ErrClosed", err)
			}
		})
	}
}

func TestGarbage(t *testing.T) {
	t.Run("before handshake", func(t *testing.T) {
		cs, ss := tcpPair(t)
		srv := startLoopServer(t, ss, serverConfig(t), 0, 5*time.Second, nil)
		cs.Write([]byte("USER alice\r\nPASS secret\r\n"))
		select {
		case err := <-srv.hsErr:
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Handshake = %v, want a protocol error", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Handshake did not fail")
		}
	})
	t.Run("after handshake", func(t *testing.T) {
		p := newMemPair(t, serverConfig(t), clientConfig(t, 0), 0)
		p.handshake(t)
		// A record header announcing application data, then noise.
		noise := append([]byte{23, 3, 3, 0, 40}, bytes.Repeat([]byte{0xAA}, 40)...)
		p.srv.Feed(noise)
		if _, err := readAll(p.srv); err == nil || errors.Is(err, ErrWouldBlock) {
			t.Fatalf("ReadPlain over noise = %v, want an error", err)
		}
		// The alert reached the client, which fails too.
		if _, err := readAll(p.cli); err == nil {
			t.Error("client read no alert")
		}
		// The error is sticky: more input does not revive the session.
		p.srv.Feed([]byte{23, 3, 3})
		if _, err := p.srv.ReadPlain(make([]byte, 10)); err == nil || errors.Is(err, ErrWouldBlock) {
			t.Errorf("second ReadPlain = %v", err)
		}
	})
	t.Run("oversized record", func(t *testing.T) {
		p := newMemPair(t, serverConfig(t), clientConfig(t, 0), 0)
		p.handshake(t)
		p.srv.Feed([]byte{23, 3, 3, 0xff, 0xff})
		if _, err := readAll(p.srv); err == nil || errors.Is(err, ErrWouldBlock) {
			t.Fatalf("ReadPlain over an oversized header = %v, want an error", err)
		}
	})
}

func TestFeedBounded(t *testing.T) {
	c := New(Options{Config: serverConfig(t), Output: func([]byte, func(error)) error { return nil }, MaxPending: MinMaxPending})
	big := make([]byte, MinMaxPending+100)
	n, err := c.Feed(big)
	if err != nil || n != MinMaxPending {
		t.Fatalf("Feed(%d) = %d, %v; want %d", len(big), n, err, MinMaxPending)
	}
	if n, _ := c.Feed([]byte("x")); n != 0 || c.Room() != 0 || c.Pending() != MinMaxPending {
		t.Errorf("Feed when full took %d, Room %d, Pending %d", n, c.Room(), c.Pending())
	}
	if _, err := c.ReadPlain(make([]byte, 10)); !errors.Is(err, ErrHandshakeIncomplete) {
		t.Errorf("ReadPlain before the handshake = %v", err)
	}
	if err := c.WritePlain([]byte("x"), nil); !errors.Is(err, ErrHandshakeIncomplete) {
		t.Errorf("WritePlain before the handshake = %v", err)
	}
	c.Abort()
	if _, err := c.Feed([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Feed after Abort = %v", err)
	}
}

// TestWritePlainOneOutput: a large write reaches Output as one call with
// the completion attached, so the engine sees one AsyncWrite per chunk.
func TestWritePlainOneOutput(t *testing.T) {
	p := newMemPair(t, serverConfig(t), clientConfig(t, 0), 0)
	p.handshake(t)
	var calls int
	var got []byte
	// Count the calls to the server's Output.
	var doneCalled bool
	p.srv.tr.omu.Lock()
	orig := p.srv.tr.out
	p.srv.tr.out = func(b []byte, done func(error)) error {
		calls++
		got = append(got, b...)
		return orig(b, done)
	}
	p.srv.tr.omu.Unlock()
	if err := p.srv.WritePlain(make([]byte, 200<<10), func(error) { doneCalled = true }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || !doneCalled {
		t.Errorf("Output called %d times, done %v; want 1, true", calls, doneCalled)
	}
	plain, err := readAll(p.cli)
	if err != nil || len(plain) != 200<<10 {
		t.Errorf("client read %d octets, %v", len(plain), err)
	}
	if len(got) <= 200<<10 {
		t.Errorf("ciphertext %d octets, not more than the plaintext", len(got))
	}
}

func TestPeerClose(t *testing.T) {
	p := newMemPair(t, serverConfig(t), clientConfig(t, 0), 0)
	p.handshake(t)
	p.cli.WritePlain([]byte("QUIT\r\n"), nil)
	if err := p.cli.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(p.srv)
	if string(got) != "QUIT\r\n" || err != io.EOF {
		t.Errorf("server read %q, %v; want QUIT and io.EOF", got, err)
	}
}

// TestSealAppendReusesBuffer: records sealed into a reused buffer are the
// ones the peer decrypts, write after write, and the buffer is the one
// given when it has room.
func TestSealAppendReusesBuffer(t *testing.T) {
	p := newMemPair(t, serverConfig(t), clientConfig(t, 0), 0)
	p.handshake(t)
	buf := make([]byte, 0, sealedSize(64<<10))
	for i, size := range []int{64 << 10, 17, 40 << 10} {
		msg := bytes.Repeat([]byte{byte('a' + i)}, size)
		out, err := p.srv.SealAppend(buf, msg)
		if err != nil {
			t.Fatal(err)
		}
		if &out[:1][0] != &buf[:1][0] {
			t.Errorf("write %d: sealed into a new slice though the buffer had room", i)
		}
		if n, err := p.cli.Feed(out); err != nil || n != len(out) {
			t.Fatalf("write %d: fed %d of %d: %v", i, n, len(out), err)
		}
		got, err := readAll(p.cli)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("write %d: client read %d octets (%v), want %d of %q", i, len(got), err, size, msg[:1])
		}
	}
	// A buffer too small is not used.
	small := make([]byte, 0, 8)
	out, err := p.srv.SealAppend(small, make([]byte, 1000))
	if err != nil || cap(out) < 1000 {
		t.Fatalf("sealed %d octets (cap %d): %v", len(out), cap(out), err)
	}
}
