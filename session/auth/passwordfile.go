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

// Challenge reports true: the password file holds APOP, CRAM-MD5 and NTLM secrets.
func (p PasswordFile) Challenge() bool { return true }
