package store

import (
	"encoding/binary"
	"errors"
)

// SCRAMKeys are what a SCRAM-SHA-256 server keeps for a password (RFC
// 5802 section 3, RFC 7677): the salt and iteration count the client
// derives SaltedPassword with, StoredKey = H(ClientKey) and ServerKey.
// Neither key gives the password back, nor lets anyone log in with a
// plaintext mechanism; StoredKey alone does not let anyone pass SCRAM.
type SCRAMKeys struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte // 32 octets
	ServerKey  []byte // 32 octets
}

// Bounds of SCRAM keys read back.
const (
	SCRAMKeyLen      = 32
	MinSCRAMIter     = 4096 // RFC 7677 section 4
	MaxSCRAMIter     = 1 << 20
	maxSCRAMSaltLen  = 64
	scramEncodingHdr = 4 + 1
)

// MarshalSCRAM is the form Credentials.Secret returns for SecretSCRAMSHA256:
// iterations (4 octets, big-endian), salt length (1 octet), salt, StoredKey, ServerKey.
func MarshalSCRAM(k SCRAMKeys) []byte {
	b := make([]byte, 0, scramEncodingHdr+len(k.Salt)+2*SCRAMKeyLen)
	b = binary.BigEndian.AppendUint32(b, uint32(k.Iterations))
	b = append(b, byte(len(k.Salt)))
	b = append(b, k.Salt...)
	b = append(b, k.StoredKey...)
	return append(b, k.ServerKey...)
}

// ParseSCRAM reads MarshalSCRAM's form and checks its bounds.
func ParseSCRAM(b []byte) (SCRAMKeys, error) {
	var k SCRAMKeys
	if len(b) < scramEncodingHdr {
		return k, errors.New("short SCRAM keys")
	}
	k.Iterations = int(binary.BigEndian.Uint32(b))
	n := int(b[4])
	b = b[scramEncodingHdr:]
	if n == 0 || n > maxSCRAMSaltLen || len(b) != n+2*SCRAMKeyLen {
		return k, errors.New("bad SCRAM keys")
	}
	if k.Iterations < MinSCRAMIter || k.Iterations > MaxSCRAMIter {
		return k, errors.New("SCRAM iteration count out of range")
	}
	k.Salt = b[:n:n]
	k.StoredKey = b[n : n+SCRAMKeyLen : n+SCRAMKeyLen]
	k.ServerKey = b[n+SCRAMKeyLen:]
	return k, nil
}
