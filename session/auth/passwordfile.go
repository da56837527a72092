package auth

import (
	"context"

	"github.com/pop3svc/pop3svc/store"
)

// PasswordFile is the "passwordfile" method: the store's encrypted password
// file. It is the only method that keeps the secrets challenge-response
// mechanisms need.
type PasswordFile struct {
	Store store.Credentials
}

// Name returns "passwordfile".
func (p PasswordFile) Name() string { return "passwordfile" }

// Plaintext verifies password with the store, in constant time; an unknown
// mailbox and a wrong password both return ErrAuthFailed.
func (p PasswordFile) Plaintext(ctx context.Context, addr store.Address, password string) error {
	return p.Store.VerifyPassword(ctx, addr, password)
}

// Cached asks the store whether it remembers password as verified for
// addr (see Cacher); it computes no hash.
func (p PasswordFile) Cached(ctx context.Context, addr store.Address, password string) (bool, int64) {
	if c, ok := p.Store.(store.CredentialCache); ok {
		return c.Cached(ctx, addr, password)
	}
	return false, 0
}

// Challenge reports true: the password file holds APOP, CRAM-MD5 and NTLM secrets.
func (p PasswordFile) Challenge() bool { return true }
