package crlf

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

// refCRLF is the obvious in-memory form of Copy's rules.
func refCRLF(in []byte) []byte {
	var out []byte
	for i, c := range in {
		if c == '\n' && (i == 0 || in[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	switch {
	case len(out) == 0 || out[len(out)-1] == '\n':
	case out[len(out)-1] == '\r':
		out = append(out, '\n')
	default:
		out = append(out, '\r', '\n')
	}
	return out
}

// chunkReader returns its input in random-sized pieces.
type chunkReader struct {
	b   []byte
	rng *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.b), 1+c.rng.IntN(7))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func TestCopyCRLFMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("a\r\n.")
	for i := 0; i < 3000; i++ {
		in := make([]byte, rng.IntN(40))
		for j := range in {
			in[j] = alphabet[rng.IntN(len(alphabet))]
		}
		var out bytes.Buffer
		n, err := Copy(context.Background(), &out, &chunkReader{b: in, rng: rng}, 0)
		want := refCRLF(in)
		if err != nil || !bytes.Equal(out.Bytes(), want) || n != int64(len(want)) {
			t.Fatalf("Copy(%q) = %q, %d, %v; want %q", in, out.Bytes(), n, err, want)
		}
	}
}

func TestCopyCRLFLimit(t *testing.T) {
	var out bytes.Buffer
	if _, err := Copy(context.Background(), &out, bytes.NewReader(bytes.Repeat([]byte("\n"), 100)), 150); !errors.Is(err, ErrLimit) {
		t.Fatalf("Copy past the limit = %v, want ErrLimit", err)
	}
	out.Reset()
	if n, err := Copy(context.Background(), &out, bytes.NewReader(bytes.Repeat([]byte("\n"), 75)), 150); err != nil || n != 150 {
		t.Fatalf("Copy at the limit = %d, %v", n, err)
	}
}

func FuzzCopyCRLF(f *testing.F) {
	for _, s := range []string{"", "a", "\r", "\n", "\r\n", "a\rb\nc\r\n", "x\r"} {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		var out bytes.Buffer
		n, err := Copy(context.Background(), &out, &chunkReader{b: bytes.Clone(in), rng: rand.New(rand.NewPCG(seed, 0))}, 0)
		want := refCRLF(in)
		if err != nil || !bytes.Equal(out.Bytes(), want) || n != int64(len(want)) {
			t.Fatalf("Copy(%q) = %q; want %q", in, out.Bytes(), want)
		}
	})
}

func TestCopyStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if _, err := Copy(ctx, &out, bytes.NewReader([]byte("x\n")), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy with an ended context = %v, want context.Canceled", err)
	}
}

// refDots is the offsets of the '.'s that begin a line of out.
func refDots(out []byte) []int64 {
	var d []int64
	for i, c := range out {
		if c == '.' && (i == 0 || out[i-1] == '\n') {
			d = append(d, int64(i))
		}
	}
	return d
}

// CopyDots finds the lines beginning with '.' exactly where the normalised
// output has them (at its start or right after a line feed), whatever the
// chunking of the input, and keeps the offsets of the first max.
func TestCopyDotsMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("a\r\n.")
	for i := 0; i < 3000; i++ {
		in := make([]byte, rng.IntN(40))
		for j := range in {
			in[j] = alphabet[rng.IntN(len(alphabet))]
		}
		want := refCRLF(in)
		wantDots := refDots(want)
		max := rng.IntN(4)
		var out bytes.Buffer
		n, dots, count, err := CopyDots(context.Background(), &out, &chunkReader{b: in, rng: rng}, 0, max)
		if err != nil || !bytes.Equal(out.Bytes(), want) || n != int64(len(want)) || count != len(wantDots) ||
			!slices.Equal(dots, wantDots[:min(max, len(wantDots))]) {
			t.Fatalf("CopyDots(%q, max %d) = %q, %d, dots %v of %d, %v; want %q, dots %v", in, max, out.Bytes(), n, dots, count, err, want, wantDots)
		}
	}
	for _, c := range []struct {
		in  string
		dot bool
	}{
		{"", false}, {".", true}, {"a.b\r\n", false}, {"a\n.b", true}, {"a\r\n..\r\n", true}, {"a\r.b", false},
	} {
		if _, _, count, err := CopyDots(context.Background(), io.Discard, bytes.NewReader([]byte(c.in)), 0, 0); err != nil || (count > 0) != c.dot {
			t.Errorf("CopyDots(%q): %d dot lines, %v; want some: %v", c.in, count, err, c.dot)
		}
	}
}

// BenchmarkCopyDots normalises a 10 MiB message of CRLF lines (what a
// delivery writes), without and with lines that begin with '.'.
func BenchmarkCopyDots(b *testing.B) {
	for _, c := range []struct {
		name  string
		every int // a dot line every so many lines; 0: none
	}{{"clean", 0}, {"dotted", 6}} {
		var msg []byte
		for i := 0; len(msg) < 10<<20; i++ {
			if c.every > 0 && i%c.every == 0 {
				msg = append(msg, ". a line that begins with a dot\r\n"...)
			}
			msg = append(msg, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"...)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, count, err := CopyDots(context.Background(), io.Discard, bytes.NewReader(msg), 0, 128); err != nil || (count > 0) != (c.every > 0) {
					b.Fatal(count, err)
				}
			}
		})
	}
}
