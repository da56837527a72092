package ntlm

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// This file is a small NTLM client, written from [MS-NLMP] independently
// of the server code's structure, for the tests.

// memStore is an in-memory Store.
type memStore struct {
	hashes  map[string][]byte // "mailbox@domain" -> NT hash; nil value: no secret
	domains map[string]bool
	err     error // returned by Secret when set
}

func (m *memStore) Secret(ctx context.Context, a store.Address, kind store.SecretKind) ([]byte, error) {
	if m.err != nil {
		return nil, m.err
	}
	if kind != store.SecretNTHash {
		return nil, fmt.Errorf("unexpected secret kind %d", kind)
	}
	h, ok := m.hashes[a.String()]
	if !ok {
		return nil, store.ErrAuthFailed
	}
	if h == nil {
		return nil, store.ErrNoSecret
	}
	return h, nil
}

func (m *memStore) Domain(ctx context.Context, name string) (store.DomainInfo, error) {
	if m.domains[name] {
		return store.DomainInfo{Name: name}, nil
	}
	return store.DomainInfo{}, store.ErrNoSuchDomain
}

// clientNegotiate builds a NEGOTIATE_MESSAGE with the given flags and no
// domain or workstation.
func clientNegotiate(flags uint32) []byte {
	b := make([]byte, 32)
	copy(b, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(b[8:], 1)
	binary.LittleEndian.PutUint32(b[12:], flags)
	return b
}

// parsedChallenge is what a client reads from a CHALLENGE_MESSAGE.
type parsedChallenge struct {
	flags      uint32
	challenge  []byte
	targetInfo []byte
	targetName []byte
}

func clientParseChallenge(t *testing.T, msg []byte) parsedChallenge {
	t.Helper()
	if len(msg) < 48 || string(msg[:8]) != "NTLMSSP\x00" || binary.LittleEndian.Uint32(msg[8:]) != 2 {
		t.Fatalf("not a CHALLENGE_MESSAGE: %x", msg)
	}
	get := func(off int) []byte {
		n := int(binary.LittleEndian.Uint16(msg[off:]))
		at := int(binary.LittleEndian.Uint32(msg[off+4:]))
		if at+n > len(msg) {
			t.Fatalf("field at %d out of range", off)
		}
		return msg[at : at+n]
	}
	return parsedChallenge{
		flags:      binary.LittleEndian.Uint32(msg[20:]),
		challenge:  msg[24:32],
		targetName: get(12),
		targetInfo: get(40),
	}
}

// authOpts is what the client puts into an AUTHENTICATE_MESSAGE.
type authOpts struct {
	user, domain, workstation string
	ntHash                    []byte
	v1                        bool   // NTLMv1 instead of NTLMv2
	ess                       bool   // NTLM2 session response (with v1)
	oem                       bool   // OEM strings instead of UTF-16LE
	mic                       bool   // send MsvAvFlags with a MIC
	corruptMIC                bool   //
	clientChallenge           []byte // 8 octets
	timestamp                 uint64
	negotiate                 []byte // for the MIC
	challengeMsg              []byte //
}

func enc(s string, oemStr bool) []byte {
	if oemStr {
		return []byte(s)
	}
	return utf16le(s)
}

func clientAuthenticate(ch parsedChallenge, o authOpts) []byte {
	var lm, nt, sessionBaseKey []byte
	cc := o.clientChallenge
	if cc == nil {
		cc = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	}
	switch {
	case o.v1 && o.ess:
		lm = append(append([]byte{}, cc...), make([]byte, 16)...)
		h := md5.Sum(append(append([]byte{}, ch.challenge...), cc...))
		nt = DESL(o.ntHash, h[:8])
	case o.v1:
		nt = DESL(o.ntHash, ch.challenge)
		lm = nt
	default:
		info := ch.targetInfo
		if o.mic {
			// Insert MsvAvFlags = 0x2 before MsvAvEOL.
			info = append([]byte{}, info[:len(info)-4]...)
			info = binary.LittleEndian.AppendUint16(info, 6)
			info = binary.LittleEndian.AppendUint16(info, 4)
			info = binary.LittleEndian.AppendUint32(info, 2)
			info = append(info, 0, 0, 0, 0)
		}
		temp := []byte{1, 1, 0, 0, 0, 0, 0, 0}
		temp = binary.LittleEndian.AppendUint64(temp, o.timestamp)
		temp = append(temp, cc...)
		temp = append(temp, 0, 0, 0, 0)
		temp = append(temp, info...)
		temp = append(temp, 0, 0, 0, 0)
		m := hmac.New(md5.New, o.ntHash)
		m.Write(utf16le(upper(o.user) + o.domain))
		key := m.Sum(nil)
		proof := hmacMD5(key, ch.challenge, temp)
		nt = append(proof, temp...)
		lm = append(hmacMD5(key, ch.challenge, cc), cc...)
		sessionBaseKey = hmacMD5(key, proof)
	}
	flags := ch.flags
	if o.oem {
		flags = flags&^FlagUnicode | FlagOEM
	}
	if o.ess {
		flags |= FlagExtendedSessionSecurity
	}
	dom, usr, wks := enc(o.domain, o.oem), enc(o.user, o.oem), enc(o.workstation, o.oem)
	const head = 88 // with Version and MIC
	b := make([]byte, head)
	copy(b, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(b[8:], 3)
	off := head
	put := func(at int, v []byte) {
		binary.LittleEndian.PutUint16(b[at:], uint16(len(v)))
		binary.LittleEndian.PutUint16(b[at+2:], uint16(len(v)))
		binary.LittleEndian.PutUint32(b[at+4:], uint32(off))
		off += len(v)
	}
	put(12, lm)
	put(20, nt)
	put(28, dom)
	put(36, usr)
	put(44, wks)
	put(52, nil)
	binary.LittleEndian.PutUint32(b[60:], flags)
	for _, v := range [][]byte{lm, nt, dom, usr, wks} {
		b = append(b, v...)
	}
	if o.mic {
		m := hmac.New(md5.New, sessionBaseKey)
		m.Write(o.negotiate)
		m.Write(o.challengeMsg)
		m.Write(b)
		copy(b[72:], m.Sum(nil))
		if o.corruptMIC {
			b[72] ^= 1
		}
	}
	return b
}

func upper(s string) string {
	r := []rune(s)
	for i, c := range r {
		if c >= 'a' && c <= 'z' {
			r[i] = c - 'a' + 'A'
		}
	}
	return string(r)
}
