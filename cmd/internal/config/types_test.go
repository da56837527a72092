package config

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Size
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"50MB", 50 << 20, true},
		{"50mb", 50 << 20, true},
		{" 512 KB ", 512 << 10, true},
		{"1G", 1 << 30, true},
		{"2TB", 2 << 40, true},
		{"10B", 10, true},
		{"", 0, false},
		{"MB", 0, false},
		{"-1", 0, false},
		{"1.5MB", 0, false},
		{"9999999999TB", 0, false},
		{"12XB", 0, false},
	} {
		got, err := ParseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, c := range []struct {
		in   Size
		want string
	}{{0, "0"}, {1000, "1000"}, {1024, "1KB"}, {50 << 20, "50MB"}, {3 << 30, "3GB"}, {1<<20 + 1, "1048577"}} {
		if got := c.in.String(); got != c.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(c.in), got, c.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"60s", time.Minute, true},
		{" 10m ", 10 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"0s", 0, true},
		{"-1s", 0, false},
		{"10", 0, false},
		{"soon", 0, false},
	} {
		var d Duration
		err := d.UnmarshalText([]byte(c.in))
		if (err == nil) != c.ok || d.D() != c.want {
			t.Errorf("Duration(%q) = %v, %v; want %v, ok=%v", c.in, d.D(), err, c.want, c.ok)
		}
	}
}

// FuzzParseSize checks that any accepted size prints to text that parses
// back to the same value, and that parsing never panics.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"50MB", "0", "1k", "9223372036854775807", "4611686018427387904", " 3 g", "B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, v)
		}
		back, err := ParseSize(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d; String %q parses to %d, %v", s, v, v.String(), back, err)
		}
	})
}

// FuzzDuration checks that any accepted duration round-trips through MarshalText.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"60s", "10m", "1h30m", "-1s", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d Duration
		if d.UnmarshalText([]byte(s)) != nil {
			return
		}
		if d < 0 {
			t.Fatalf("Duration(%q) = %v, negative", s, d.D())
		}
		b, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back != d {
			t.Fatalf("Duration(%q) = %v; %q parses to %v, %v", s, d.D(), b, back.D(), err)
		}
	})
}
