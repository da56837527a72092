package pop3

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// refDotStuff is the obvious whole-buffer version DotReader must match.
func refDotStuff(msg []byte) []byte {
	var out []byte
	bol := true
	for _, c := range msg {
		if bol && c == '.' {
			out = append(out, '.')
		}
		out = append(out, c)
		bol = c == '\n'
	}
	if !bytes.HasSuffix(out, []byte("\r\n")) && len(out) > 0 {
		out = append(out, '\r', '\n')
	}
	return append(out, ".\r\n"...)
}

func TestDotReaderTable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ".\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{"a", "a\r\n.\r\n"},
		{".", "..\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{"a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
		{"..x\r\n", "...x\r\n.\r\n"},
		{"x.y\r\n.", "x.y\r\n..\r\n.\r\n"},
		{"a\r", "a\r\r\n.\r\n"},
		{"a\n.b\n", "a\n..b\n\r\n.\r\n"},
		{"\r\n", "\r\n.\r\n"},
		{"\r\n\r\n.", "\r\n\r\n..\r\n.\r\n"},
	} {
		got, err := io.ReadAll(NewDotReader(strings.NewReader(tc.in)))
		if err != nil || string(got) != tc.want {
			t.Errorf("DotReader(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if ref := string(refDotStuff([]byte(tc.in))); ref != tc.want {
			t.Errorf("refDotStuff(%q) = %q; want %q", tc.in, ref, tc.want)
		}
	}
}

// readChunks reads r with caller buffers of random sizes.
func readChunks(t testing.TB, r io.Reader, rng *rand.Rand) []byte {
	var out []byte
	for i := 0; ; i++ {
		if i > 1<<24 {
			t.Fatal("reader does not end")
		}
		p := make([]byte, 1+rng.IntN(9))
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// chunkReader returns its data in pieces of random sizes.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1 + c.rng.IntN(min(len(c.data), 7))
	n = copy(p[:min(n, len(p))], c.data)
	c.data = c.data[n:]
	return n, nil
}

func randomMessage(rng *rand.Rand, n int) []byte {
	alphabet := []byte(".\r\n.a\r\n..")
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return b
}

func TestDotReaderRandomChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		msg := randomMessage(rng, rng.IntN(64))
		want := refDotStuff(msg)
		got := readChunks(t, NewDotReader(&chunkReader{data: msg, rng: rng}), rng)
		if !bytes.Equal(got, want) {
			t.Fatalf("message %q:\n got %q\nwant %q", msg, got, want)
		}
		got, err := io.ReadAll(NewDotReader(iotest.OneByteReader(bytes.NewReader(msg))))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("one byte at a time %q: got %q, %v", msg, got, err)
		}
		got, err = io.ReadAll(iotest.OneByteReader(NewDotReader(iotest.DataErrReader(bytes.NewReader(msg)))))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("data+EOF reads %q: got %q, %v", msg, got, err)
		}
	}
	// A message larger than the internal buffer.
	big := randomMessage(rng, 3*dotBufSize+17)
	got := readChunks(t, NewDotReader(bytes.NewReader(big)), rng)
	if !bytes.Equal(got, refDotStuff(big)) {
		t.Fatal("large message differs from the reference")
	}
}

func TestDotReaderSourceError(t *testing.T) {
	r := NewDotReader(io.MultiReader(strings.NewReader("abc\r\n"), iotest.ErrReader(io.ErrUnexpectedEOF)))
	got, err := io.ReadAll(r)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want the source's error", err)
	}
	if bytes.HasSuffix(got, []byte(".\r\n")) {
		t.Fatalf("a failed read must not look complete: %q", got)
	}
}

func FuzzDotReader(f *testing.F) {
	f.Add([]byte(".\r\n..\r\nx"), uint64(1))
	f.Add([]byte(""), uint64(2))
	f.Fuzz(func(t *testing.T, msg []byte, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed))
		got := readChunks(t, NewDotReader(&chunkReader{data: msg, rng: rng}), rng)
		want := refDotStuff(msg)
		if !bytes.Equal(got, want) {
			t.Fatalf("got %q want %q", got, want)
		}
		if !bytes.HasSuffix(got, []byte("\r\n.\r\n")) && !bytes.Equal(got, []byte(".\r\n")) {
			t.Fatalf("output %q does not end with CRLF.CRLF", got)
		}
	})
}

func TestTopReader(t *testing.T) {
	msg := "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"
	for _, tc := range []struct {
		msg   string
		lines int
		want  string
	}{
		{msg, 0, "A: 1\r\nB: 2\r\n\r\n"},
		{msg, 1, "A: 1\r\nB: 2\r\n\r\nl1\r\n"},
		{msg, 3, msg},
		{msg, 100, msg},
		{"A: 1\r\nB: 2\r\n", 1, "A: 1\r\nB: 2\r\n"}, // no body
		{"\r\nbody\r\n", 0, "\r\n"},                 // no header
		{"A: 1\n\nx\ny\n", 1, "A: 1\n\nx\n"},
		{"A: 1\r\n\r\nno newline", 5, "A: 1\r\n\r\nno newline"},
	} {
		for _, one := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tc.msg)
			if one {
				src = iotest.OneByteReader(src)
			}
			got, err := io.ReadAll(newTopReader(src, tc.lines))
			if err != nil || string(got) != tc.want {
				t.Errorf("top(%q, %d, onebyte=%v) = %q, %v; want %q", tc.msg, tc.lines, one, got, err, tc.want)
			}
		}
	}
}

func BenchmarkDotStuff(b *testing.B) {
	// A 1 MiB message of 76-octet lines, every tenth starting with '.'.
	var msg []byte
	for i := 0; len(msg) < 1<<20; i++ {
		if i%10 == 0 {
			msg = append(msg, '.')
		}
		msg = append(msg, strings.Repeat("x", 74)...)
		msg = append(msg, '\r', '\n')
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewDotReader(bytes.NewReader(msg))
		for {
			_, err := r.Read(buf)
			if err == io.EOF {
				break
			}
		}
	}
}

func TestIndexLFDot(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"", -1}, {".", -1}, {"\n", -1}, {"\n.", 0}, {"a\n.b", 1}, {"..\n", -1}, {"a.b\nc", -1},
		{"a.b\n.c", 3}, {"x\r\n..", 2}, {".\n.", 1}, {"abc.def.\nghi\n.", 12},
	} {
		if got := indexLFDot([]byte(c.in)); got != c.want {
			t.Errorf("indexLFDot(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
