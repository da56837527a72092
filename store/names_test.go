package store

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateDomain(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name string
		ok   bool
	}{
		{"example.com", true},
		{"a", true},
		{"mail-1.example.co.uk", true},
		{"123.example", true},
		{long63 + ".com", true},
		{strings.Repeat("a.", 127)[:253], true},
		{"", false},
		{".", false},
		{"..", false},
		{".example.com", false},
		{"example.com.", false},
		{"a..b", false},
		{"-a.com", false},
		{"a-.com", false},
		{"a.-b.com", false},
		{"Example.com", false}, // not canonical: CanonicalDomain lower-cases first
		{"a_b.com", false},
		{"a b.com", false},
		{"a/b", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"a@b", false},
		{"exämple.com", false},
		{long63 + "a.com", false},
		{strings.Repeat("a", 255), false},
		{strings.Repeat("a.", 128), false},
		{strings.Repeat("a", 300), false},
	}
	for _, tc := range tests {
		err := ValidateDomain(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateDomain(%.40q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateDomain(%.40q) = %v, does not wrap ErrInvalidName", tc.name, err)
		}
	}
}

func TestValidateMailbox(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"a", true},
		{"first_last", true},
		{"o'brien", true},
		{"jürgen", true},
		{"名前", true},
		{"a-b~c!d#e$f%g^h&i{j}k<l>m'n`o", true},
		{strings.Repeat("m", 63), true},
		{"", false},
		{".", false},
		{"..", false},
		{"a.b", false},
		{"a b", false},
		{"a\tb", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\x00b", false},
		{"a\x7fb", false},
		{"bad\xff", false},
		{strings.Repeat("m", 64), false},
		{strings.Repeat("é", 32), false}, // 64 octets
	}
	for _, c := range `@()/\[]:;,".*=|?+` {
		tests = append(tests, struct {
			name string
			ok   bool
		}{"a" + string(c) + "b", false})
	}
	for _, tc := range tests {
		err := ValidateMailbox(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateMailbox(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateMailbox(%q) = %v, does not wrap ErrInvalidName", tc.name, err)
		}
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in, def string
		want    Address
		ok      bool
	}{
		{"alice@example.com", "", Address{"alice", "example.com"}, true},
		{"Alice@Example.COM", "", Address{"alice", "example.com"}, true},
		{"JÜRGEN@example.com", "", Address{"jürgen", "example.com"}, true},
		{"bob", "example.com", Address{"bob", "example.com"}, true},
		{"bob", "Example.com", Address{"bob", "example.com"}, true},
		{"bob@other.org", "example.com", Address{"bob", "other.org"}, true},
		{"bob", "", Address{}, false},
		{"a@b@c.com", "", Address{}, false},
		{"@example.com", "", Address{}, false},
		{"alice@", "", Address{}, false},
		{"../x@example.com", "", Address{}, false},
		{"alice@../x", "", Address{}, false},
		{"alice@.", "", Address{}, false},
		{"a\x00@example.com", "", Address{}, false},
		{"bad\xff@example.com", "", Address{}, false},
		{"alice@exa\xffmple.com", "", Address{}, false},
		{"a.b@example.com", "", Address{}, false},
	}
	for _, tc := range tests {
		got, err := ParseAddress(tc.in, tc.def)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseAddress(%q, %q) = %v, %v; want %v, ok=%v", tc.in, tc.def, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseAddress(%q) = %v, does not wrap ErrInvalidName", tc.in, err)
		}
		if err == nil && got.String() != got.Mailbox+"@"+got.Domain {
			t.Errorf("Address.String() = %q", got.String())
		}
	}
}

func TestCanonicalDomain(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"EXAMPLE.Com", "example.com", true},
		{"example.com", "example.com", true},
		{"", "", false},
		{"EXAMPLE..com", "", false},
		{"ex\xffample.com", "", false},
	} {
		got, err := CanonicalDomain(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("CanonicalDomain(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
