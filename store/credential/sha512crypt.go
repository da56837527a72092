package credential

import (
	"crypto/sha512"
	"errors"
	"strconv"
	"strings"
)

// SHA-512-crypt ("$6$", Ulrich Drepper's "Unix crypt using SHA-256 and
// SHA-512", the glibc and /etc/shadow format), for operators who bring
// such hashes and for those who choose it for new passwords.
const (
	sha512Prefix        = "$6$"
	sha512RoundsPrefix  = "rounds="
	SHA512DefaultRounds = 5000      // the specification's default, written without "rounds="
	SHA512MinRounds     = 1000      // the specification's bounds; values outside are clamped
	SHA512MaxRounds     = 999999999 //
	sha512MaxSalt       = 16
	// sha512MaxVerifyRounds bounds the rounds accepted from a stored hash,
	// so that a damaged or hostile file cannot make a check take minutes.
	sha512MaxVerifyRounds = 5000000
)

const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

var errBadSHA512 = errors.New("not a SHA-512-crypt hash")

// parseSHA512Crypt splits "$6$[rounds=N$]salt$hash" into its rounds (0 when
// not written), salt and hash.
func parseSHA512Crypt(s string) (rounds int, salt, hash string, err error) {
	rest, ok := strings.CutPrefix(s, sha512Prefix)
	if !ok {
		return 0, "", "", errBadSHA512
	}
	if r, ok := strings.CutPrefix(rest, sha512RoundsPrefix); ok {
		num, tail, ok := strings.Cut(r, "$")
		if !ok {
			return 0, "", "", errBadSHA512
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 {
			return 0, "", "", errBadSHA512
		}
		rounds = min(max(n, SHA512MinRounds), SHA512MaxRounds)
		rest = tail
	}
	salt, hash, ok = strings.Cut(rest, "$")
	if !ok || len(salt) > sha512MaxSalt || len(hash) != 86 || strings.ContainsAny(salt, "$:\n") {
		return 0, "", "", errBadSHA512
	}
	return rounds, salt, hash, nil
}

// sha512Crypt computes the SHA-512-crypt string of password with salt
// (at most 16 characters) and rounds (0: the default, not written).
func sha512Crypt(password []byte, salt string, rounds int) string {
	written := rounds != 0
	if rounds == 0 {
		rounds = SHA512DefaultRounds
	}
	rounds = min(max(rounds, SHA512MinRounds), SHA512MaxRounds)
	if len(salt) > sha512MaxSalt {
		salt = salt[:sha512MaxSalt]
	}
	p, s := password, []byte(salt)

	// Digest B: password, salt, password.
	h := sha512.New()
	h.Write(p)
	h.Write(s)
	h.Write(p)
	b := h.Sum(nil)

	// Digest A: password, salt, then B for the password's length, then
	// B or the password for each bit of that length.
	h.Reset()
	h.Write(p)
	h.Write(s)
	n := len(p)
	for ; n > 64; n -= 64 {
		h.Write(b)
	}
	h.Write(b[:n])
	for n = len(p); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b)
		} else {
			h.Write(p)
		}
	}
	a := h.Sum(nil)

	// The P sequence: the digest of the password repeated once per octet,
	// stretched to the password's length.
	h.Reset()
	for range len(p) {
		h.Write(p)
	}
	pseq := stretch(h.Sum(nil), len(p))

	// The S sequence: the digest of the salt repeated 16 + A[0] times,
	// stretched to the salt's length.
	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(s)
	}
	sseq := stretch(h.Sum(nil), len(s))

	c := a
	for i := range rounds {
		h.Reset()
		if i&1 != 0 {
			h.Write(pseq)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sseq)
		}
		if i%7 != 0 {
			h.Write(pseq)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pseq)
		}
		c = h.Sum(c[:0])
	}

	var out strings.Builder
	out.WriteString(sha512Prefix)
	if written {
		out.WriteString(sha512RoundsPrefix + strconv.Itoa(rounds) + "$")
	}
	out.WriteString(salt)
	out.WriteByte('$')
	// The specification's byte order: groups of three octets twenty-one
	// apart, rotated by one position per group, then the last octet.
	for i := range 21 {
		x, y, z := c[i], c[i+21], c[i+42]
		switch i % 3 {
		case 1:
			x, y, z = c[i+21], c[i+42], c[i]
		case 2:
			x, y, z = c[i+42], c[i], c[i+21]
		}
		encode24(&out, x, y, z, 4)
	}
	encode24(&out, 0, 0, c[63], 2)
	return out.String()
}

func stretch(d []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out)+len(d) <= n {
		out = append(out, d...)
	}
	return append(out, d[:n-len(out)]...)
}

func encode24(out *strings.Builder, b2, b1, b0 byte, n int) {
	w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
	for range n {
		out.WriteByte(cryptAlphabet[w&0x3f])
		w >>= 6
	}
}

// newSHA512Salt returns a random 16-character salt.
func newSHA512Salt(random []byte) string {
	var b strings.Builder
	for _, r := range random[:sha512MaxSalt] {
		b.WriteByte(cryptAlphabet[int(r)&0x3f])
	}
	return b.String()
}
