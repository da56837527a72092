package store

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxDomainLen is the longest domain name accepted: fewer than 255 characters.
const MaxDomainLen = 254

// MaxMailboxLen is the longest mailbox name accepted: fewer than 64 characters.
const MaxMailboxLen = 63

// forbiddenMailboxChars are the characters a mailbox name may not contain
// (the seed's set), besides control characters, space and NUL.
const forbiddenMailboxChars = `@()/\[]:;,".*=|?+`

// ValidateDomain checks a canonical (lower-case) domain name: 1 to 254
// characters of a-z, 0-9, '-' and '.', labels not empty, not starting or
// ending with '-'. The error wraps ErrInvalidName and names the rule broken.
func ValidateDomain(name string) error {
	if name == "" {
		return fmt.Errorf("%w: domain name is empty", ErrInvalidName)
	}
	if len(name) > MaxDomainLen {
		return fmt.Errorf("%w: domain name has %d characters, the limit is %d", ErrInvalidName, len(name), MaxDomainLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.':
		default:
			return fmt.Errorf("%w: domain name contains %s; only a-z, 0-9, '-' and '.' are allowed", ErrInvalidName, describeChar(name[i:]))
		}
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("%w: domain name %q has an empty label", ErrInvalidName, name)
		}
		if len(label) > 63 {
			return fmt.Errorf("%w: domain label %q is longer than 63 characters", ErrInvalidName, label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%w: domain label %q starts or ends with '-'", ErrInvalidName, label)
		}
	}
	return nil
}

// ValidateMailbox checks a canonical (lower-case) mailbox name: 1 to 63
// characters, none of the seed's forbidden set @ ( ) / \ [ ] : ; , " . * = | ? +,
// no control characters or spaces, valid UTF-8. The error wraps
// ErrInvalidName and names the rule broken.
func ValidateMailbox(name string) error {
	if name == "" {
		return fmt.Errorf("%w: mailbox name is empty", ErrInvalidName)
	}
	if len(name) > MaxMailboxLen {
		return fmt.Errorf("%w: mailbox name has %d characters, the limit is %d", ErrInvalidName, len(name), MaxMailboxLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: mailbox name is not valid UTF-8", ErrInvalidName)
	}
	for i, r := range name {
		if r < 0x20 || r == 0x7f || r == ' ' || strings.ContainsRune(forbiddenMailboxChars, r) {
			return fmt.Errorf("%w: mailbox name contains %s, which is not allowed", ErrInvalidName, describeChar(name[i:]))
		}
	}
	return nil
}

// ParseAddress turns "mailbox@domain" into a validated Address, lower-casing
// both parts. When the input has no '@' and defaultDomain is not empty, the
// mailbox is taken to be in defaultDomain.
func ParseAddress(s, defaultDomain string) (Address, error) {
	mbox, dom, ok := strings.Cut(s, "@")
	if !ok {
		if defaultDomain == "" {
			return Address{}, fmt.Errorf("%w: %q is not of the form mailbox@domain", ErrInvalidName, s)
		}
		dom = defaultDomain
	}
	if strings.Contains(dom, "@") {
		return Address{}, fmt.Errorf("%w: mailbox name contains '@', which is not allowed", ErrInvalidName)
	}
	return CanonicalAddress(Address{Mailbox: mbox, Domain: dom})
}

// CanonicalAddress lower-cases and validates both parts of an address,
// as every store does before a name reaches its storage.
func CanonicalAddress(a Address) (Address, error) {
	// Lower-casing would turn invalid UTF-8 into U+FFFD: refuse it first.
	if !utf8.ValidString(a.Mailbox) {
		return Address{}, fmt.Errorf("%w: mailbox name is not valid UTF-8", ErrInvalidName)
	}
	c := Address{Mailbox: strings.ToLower(a.Mailbox), Domain: strings.ToLower(a.Domain)}
	if err := ValidateMailbox(c.Mailbox); err != nil {
		return Address{}, err
	}
	if err := ValidateDomain(c.Domain); err != nil {
		return Address{}, err
	}
	return c, nil
}

// CanonicalDomain lower-cases and validates a domain name.
func CanonicalDomain(s string) (string, error) {
	d := strings.ToLower(s)
	if err := ValidateDomain(d); err != nil {
		return "", err
	}
	return d, nil
}

func describeChar(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	switch {
	case r == 0:
		return "a NUL byte"
	case r == utf8.RuneError:
		return fmt.Sprintf("the byte 0x%02x", s[0])
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf("the control character 0x%02x", r)
	case r == ' ':
		return "a space"
	default:
		return fmt.Sprintf("the character %q", r)
	}
}
