package ntlm

import (
	"crypto/des"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rc4"
	"strings"

	//lint:ignore SA1019 NTLM is defined on MD4 ([MS-NLMP] 3.3.1)
	"golang.org/x/crypto/md4"
)

// NTHash returns NTOWFv1: MD4(UTF-16LE(password)), [MS-NLMP] §3.3.1. The
// password file keeps it (encrypted) as store.SecretNTHash.
func NTHash(password string) []byte {
	h := md4.New()
	h.Write(utf16le(password))
	return h.Sum(nil)
}

// NTOWFv2 returns HMAC_MD5(NT hash, UTF-16LE(Uppercase(user) + domain)),
// [MS-NLMP] §3.3.2, with user and domain as the client wrote them.
func NTOWFv2(ntHash []byte, user, domain string) []byte {
	m := hmac.New(md5.New, ntHash)
	m.Write(utf16le(strings.ToUpper(user) + domain))
	return m.Sum(nil)
}

func hmacMD5(key []byte, parts ...[]byte) []byte {
	m := hmac.New(md5.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// desKey spreads 7 octets over the 8 octets of a DES key (the low bit of
// each is parity, ignored by DES), [MS-NLMP] §6 (DES).
func desKey(k []byte) []byte {
	return []byte{
		k[0] & 0xfe,
		k[0]<<7 | k[1]>>1,
		k[1]<<6 | k[2]>>2,
		k[2]<<5 | k[3]>>3,
		k[3]<<4 | k[4]>>4,
		k[4]<<3 | k[5]>>5,
		k[5]<<2 | k[6]>>6,
		k[6] << 1,
	}
}

// DESL encrypts the 8 octets d under the 16-octet key k, [MS-NLMP] §6:
// DES(K[0..6], D) ‖ DES(K[7..13], D) ‖ DES(K[14..15] ‖ 5×0, D).
func DESL(k []byte, d []byte) []byte {
	var k21 [21]byte
	copy(k21[:], k)
	out := make([]byte, 24)
	for i := range 3 {
		c, err := des.NewCipher(desKey(k21[7*i : 7*i+7]))
		if err != nil {
			panic("ntlm: DES key of wrong size") // cannot happen: always 8 octets
		}
		c.Encrypt(out[8*i:], d[:8])
	}
	return out
}

// rc4Crypt is RC4K(key, data), [MS-NLMP] §6.
func rc4Crypt(key, data []byte) []byte {
	c, err := rc4.NewCipher(key)
	if err != nil {
		return nil
	}
	out := make([]byte, len(data))
	c.XORKeyStream(out, data)
	return out
}
