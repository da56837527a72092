// Package jwttest makes signed JSON Web Tokens and JSON Web Key Sets for
// the tests of the OAuth bearer-token paths (session/auth, cmd/pop3d): the
// tests make their own keys, publish them as a JWKS and sign tokens with
// them, as an identity provider would.
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
)

var b64u = base64.RawURLEncoding

// Alg is the JWS algorithm of key: ES256 for an ECDSA (P-256) key, RS256
// otherwise.
func Alg(key crypto.Signer) string {
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		return "ES256"
	}
	return "RS256"
}

// Sign makes a compact JWS of claims signed with key, its header naming
// kid and alg. alg is written as given, so a test may name one the key
// does not match; the signature is always the key's own (RSA PKCS #1 v1.5
// or ECDSA with SHA-256).
func Sign(key crypto.Signer, kid, alg string, claims map[string]any) (string, error) {
	h, err := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": "JWT"})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signed := b64u.EncodeToString(h) + "." + b64u.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:]); err != nil {
			return "", err
		}
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return "", err
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	default:
		return "", errors.New("jwttest: an RSA or ECDSA P-256 key only")
	}
	return signed + "." + b64u.EncodeToString(sig), nil
}

// JWKS returns the key set publishing keys (RSA or ECDSA P-256 public
// keys) under their key IDs.
func JWKS(keys map[string]crypto.PublicKey) []byte {
	out := []map[string]string{}
	for kid, k := range keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			out = append(out, map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "n": b64u.EncodeToString(k.N.Bytes()), "e": b64u.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
		case *ecdsa.PublicKey:
			b, _ := k.Bytes()
			out = append(out, map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64u.EncodeToString(b[1:33]), "y": b64u.EncodeToString(b[33:])})
		}
	}
	b, _ := json.Marshal(map[string]any{"keys": out})
	return b
}
