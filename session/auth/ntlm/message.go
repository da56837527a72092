package ntlm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
)

// Negotiate flags, [MS-NLMP] §2.2.2.5.
const (
	FlagUnicode                 uint32 = 0x00000001 // NTLMSSP_NEGOTIATE_UNICODE
	FlagOEM                     uint32 = 0x00000002 // NTLM_NEGOTIATE_OEM
	FlagRequestTarget           uint32 = 0x00000004 // NTLMSSP_REQUEST_TARGET
	FlagSign                    uint32 = 0x00000010 // NTLMSSP_NEGOTIATE_SIGN
	FlagSeal                    uint32 = 0x00000020 // NTLMSSP_NEGOTIATE_SEAL
	FlagLMKey                   uint32 = 0x00000080 // NTLMSSP_NEGOTIATE_LM_KEY
	FlagNTLM                    uint32 = 0x00000200 // NTLMSSP_NEGOTIATE_NTLM
	FlagAnonymous               uint32 = 0x00000800 // anonymous connection
	FlagAlwaysSign              uint32 = 0x00008000 // NTLMSSP_NEGOTIATE_ALWAYS_SIGN
	FlagTargetTypeDomain        uint32 = 0x00010000 // NTLMSSP_TARGET_TYPE_DOMAIN
	FlagTargetTypeServer        uint32 = 0x00020000 // NTLMSSP_TARGET_TYPE_SERVER
	FlagExtendedSessionSecurity uint32 = 0x00080000 // NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
	FlagTargetInfo              uint32 = 0x00800000 // NTLMSSP_NEGOTIATE_TARGET_INFO
	FlagVersion                 uint32 = 0x02000000 // NTLMSSP_NEGOTIATE_VERSION
	Flag128                     uint32 = 0x20000000 // NTLMSSP_NEGOTIATE_128
	FlagKeyExch                 uint32 = 0x40000000 // NTLMSSP_NEGOTIATE_KEY_EXCH
	Flag56                      uint32 = 0x80000000 // NTLMSSP_NEGOTIATE_56
)

// AV_PAIR identifiers, [MS-NLMP] §2.2.2.1.
const (
	avEOL             uint16 = 0
	avNbComputerName  uint16 = 1
	avNbDomainName    uint16 = 2
	avDNSComputerName uint16 = 3
	avDNSDomainName   uint16 = 4
	avFlags           uint16 = 6
	avTimestamp       uint16 = 7
)

// avFlagMIC is the MsvAvFlags bit saying the AUTHENTICATE_MESSAGE carries
// a MIC, [MS-NLMP] §2.2.2.1.
const avFlagMIC uint32 = 0x00000002

// Message types, [MS-NLMP] §2.2.1.
const (
	typeNegotiate    uint32 = 1
	typeChallenge    uint32 = 2
	typeAuthenticate uint32 = 3
)

// Limits on what a client may send. A message beyond them is malformed.
const (
	// MaxMessage is the largest NTLM message accepted, in octets.
	MaxMessage = 4096
	// MaxNameBytes bounds the user, domain and workstation fields.
	MaxNameBytes = 512
)

var signature = []byte("NTLMSSP\x00")

// errMalformed is wrapped by every parse error.
var errMalformed = errors.New("malformed NTLM message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// header checks the signature and message type.
func header(msg []byte, want uint32) error {
	if len(msg) > MaxMessage {
		return malformed("%d octets, more than %d", len(msg), MaxMessage)
	}
	if len(msg) < 12 || string(msg[:8]) != string(signature) {
		return malformed("no NTLMSSP signature")
	}
	if t := binary.LittleEndian.Uint32(msg[8:]); t != want {
		return malformed("message type %d, want %d", t, want)
	}
	return nil
}

// field reads the (Len, MaxLen, BufferOffset) triple at off, [MS-NLMP]
// §2.2.1, and returns the bytes it points to, bounded by the message.
func field(msg []byte, off int, max int) ([]byte, error) {
	if off+8 > len(msg) {
		return nil, malformed("field at %d beyond the message", off)
	}
	n := int(binary.LittleEndian.Uint16(msg[off:]))
	at := int(binary.LittleEndian.Uint32(msg[off+4:]))
	if n == 0 {
		return nil, nil
	}
	if n > max {
		return nil, malformed("field at %d is %d octets, more than %d", off, n, max)
	}
	if at < 0 || at > len(msg) || n > len(msg)-at {
		return nil, malformed("field at %d points outside the message", off)
	}
	return msg[at : at+n], nil
}

// Negotiate is what the server uses of a NEGOTIATE_MESSAGE (§2.2.1.1).
type Negotiate struct {
	Flags uint32
}

// ParseNegotiate parses a NEGOTIATE_MESSAGE.
func ParseNegotiate(msg []byte) (Negotiate, error) {
	if err := header(msg, typeNegotiate); err != nil {
		return Negotiate{}, err
	}
	if len(msg) < 16 {
		return Negotiate{}, malformed("NEGOTIATE_MESSAGE of %d octets", len(msg))
	}
	n := Negotiate{Flags: binary.LittleEndian.Uint32(msg[12:])}
	// The domain and workstation fields are optional (§2.2.1.1); when
	// present they must still point inside the message.
	if len(msg) >= 32 {
		if _, err := field(msg, 16, MaxNameBytes); err != nil {
			return Negotiate{}, err
		}
		if _, err := field(msg, 24, MaxNameBytes); err != nil {
			return Negotiate{}, err
		}
	}
	return n, nil
}

// Authenticate is a parsed AUTHENTICATE_MESSAGE (§2.2.1.3).
type Authenticate struct {
	LMResponse  []byte
	NTResponse  []byte
	Domain      string
	User        string
	Workstation string
	SessionKey  []byte // EncryptedRandomSessionKey
	Flags       uint32
	// MICOffset is where a MIC would sit (after the Version field) when
	// the payload leaves room for it; 0 otherwise.
	MICOffset int
}

// ParseAuthenticate parses an AUTHENTICATE_MESSAGE. Strings are decoded
// from UTF-16LE when the message's flags say UNICODE, else as OEM (taken
// as Latin-1).
func ParseAuthenticate(msg []byte) (Authenticate, error) {
	var a Authenticate
	if err := header(msg, typeAuthenticate); err != nil {
		return a, err
	}
	if len(msg) < 64 {
		return a, malformed("AUTHENTICATE_MESSAGE of %d octets", len(msg))
	}
	var err error
	if a.LMResponse, err = field(msg, 12, MaxMessage); err != nil {
		return a, err
	}
	if a.NTResponse, err = field(msg, 20, MaxMessage); err != nil {
		return a, err
	}
	dom, err := field(msg, 28, MaxNameBytes)
	if err != nil {
		return a, err
	}
	user, err := field(msg, 36, MaxNameBytes)
	if err != nil {
		return a, err
	}
	wks, err := field(msg, 44, MaxNameBytes)
	if err != nil {
		return a, err
	}
	if a.SessionKey, err = field(msg, 52, MaxMessage); err != nil {
		return a, err
	}
	a.Flags = binary.LittleEndian.Uint32(msg[60:])
	unicode := a.Flags&FlagUnicode != 0
	if a.Domain, err = decodeString(dom, unicode); err != nil {
		return a, err
	}
	if a.User, err = decodeString(user, unicode); err != nil {
		return a, err
	}
	if a.Workstation, err = decodeString(wks, unicode); err != nil {
		return a, err
	}
	// The MIC follows the 8-octet Version field; it is only there when
	// the payload starts after it.
	if first := payloadStart(msg); first >= 88 {
		a.MICOffset = 72
	}
	return a, nil
}

// payloadStart returns the smallest non-empty field offset of an
// AUTHENTICATE_MESSAGE, or len(msg) when all fields are empty.
func payloadStart(msg []byte) int {
	first := len(msg)
	for off := 12; off <= 52; off += 8 {
		if binary.LittleEndian.Uint16(msg[off:]) == 0 {
			continue
		}
		if at := int(binary.LittleEndian.Uint32(msg[off+4:])); at < first {
			first = at
		}
	}
	return first
}

// decodeString decodes a name field.
func decodeString(b []byte, unicode bool) (string, error) {
	if !unicode {
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r), nil
	}
	if len(b)%2 != 0 {
		return "", malformed("UTF-16 string of odd length %d", len(b))
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u)), nil
}

// utf16le encodes s as UTF-16LE.
func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// oem encodes s for a non-Unicode peer: Latin-1, other characters as '?'.
func oem(s string) []byte {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			r = '?'
		}
		b = append(b, byte(r))
	}
	return b
}

// avPair is one AV_PAIR.
type avPair struct {
	id    uint16
	value []byte
}

// appendAVPairs encodes pairs followed by MsvAvEOL.
func appendAVPairs(b []byte, pairs []avPair) []byte {
	for _, p := range pairs {
		b = binary.LittleEndian.AppendUint16(b, p.id)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(p.value)))
		b = append(b, p.value...)
	}
	return append(b, 0, 0, 0, 0)
}

// parseAVPairs decodes an AV_PAIR list up to MsvAvEOL, bounded by b.
func parseAVPairs(b []byte) ([]avPair, error) {
	var out []avPair
	for len(b) >= 4 {
		id := binary.LittleEndian.Uint16(b)
		n := int(binary.LittleEndian.Uint16(b[2:]))
		b = b[4:]
		if id == avEOL {
			return out, nil
		}
		if n > len(b) {
			return nil, malformed("AV_PAIR %d of %d octets overruns its list", id, n)
		}
		if len(out) >= 64 {
			return nil, malformed("more than 64 AV_PAIRs")
		}
		out = append(out, avPair{id: id, value: b[:n]})
		b = b[n:]
	}
	return nil, malformed("AV_PAIR list without MsvAvEOL")
}

// Challenge is the content of a CHALLENGE_MESSAGE (§2.2.1.2).
type Challenge struct {
	Flags           uint32
	ServerChallenge [8]byte
	TargetName      string
	TargetInfo      []byte // encoded AV_PAIR list
}

// version is the VERSION structure sent when NEGOTIATE_VERSION is set
// (§2.2.2.10): product 6.1 build 7601, NTLMSSP revision 15. Clients use it
// for debugging only.
var version = []byte{6, 1, 0xb1, 0x1d, 0, 0, 0, 0x0f}

// Marshal encodes the CHALLENGE_MESSAGE.
func (c Challenge) Marshal() []byte {
	const head = 56 // through the Version field
	var name []byte
	if c.Flags&FlagUnicode != 0 {
		name = utf16le(c.TargetName)
	} else {
		name = oem(c.TargetName)
	}
	b := make([]byte, head, head+len(name)+len(c.TargetInfo))
	copy(b, signature)
	binary.LittleEndian.PutUint32(b[8:], typeChallenge)
	putField(b[12:], len(name), head)
	binary.LittleEndian.PutUint32(b[20:], c.Flags)
	copy(b[24:], c.ServerChallenge[:])
	putField(b[40:], len(c.TargetInfo), head+len(name))
	if c.Flags&FlagVersion != 0 {
		copy(b[48:], version)
	}
	b = append(b, name...)
	return append(b, c.TargetInfo...)
}

func putField(b []byte, n, off int) {
	binary.LittleEndian.PutUint16(b, uint16(n))
	binary.LittleEndian.PutUint16(b[2:], uint16(n))
	binary.LittleEndian.PutUint32(b[4:], uint32(off))
}
