package wiring

import (
	"testing"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/store/credential"
)

// Every [auth] hash setting the configuration accepts, at its bounds, is
// one the password records accept too, so that a reload Validate passes
// never fails in the store; the defaults are the records' defaults.
func TestHashParamsWithinRecordBounds(t *testing.T) {
	if got, want := HashParams(config.Default().Auth), (credential.HashParams{}).Normal(); got != want {
		t.Errorf("default settings give %+v, records default to %+v", got, want)
	}
	for _, set := range []func(a *config.Auth){
		func(a *config.Auth) { a.Hash = "bcrypt"; a.BcryptCost = 4 },
		func(a *config.Auth) { a.Hash = "bcrypt"; a.BcryptCost = 16 },
		func(a *config.Auth) { a.Hash = "sha512-crypt"; a.SHA512Rounds = 1000 },
		func(a *config.Auth) { a.Hash = "sha512-crypt"; a.SHA512Rounds = 5000000 },
		func(a *config.Auth) { a.Argon2Time, a.Argon2Memory, a.Argon2Threads = 1, 64<<10, 8 },
		func(a *config.Auth) { a.Argon2Time, a.Argon2Memory, a.Argon2Threads = 64, 1<<30, 255 },
	} {
		c := config.Default()
		set(&c.Auth)
		if err := c.Validate(); err != nil {
			t.Fatalf("%+v: %v", c.Auth, err)
		}
		if err := HashParams(c.Auth).Check(); err != nil {
			t.Errorf("settings %+v are valid, but the records refuse them: %v", c.Auth, err)
		}
	}
	c := config.Default()
	c.Auth.Argon2Memory, c.Auth.Argon2Threads = 64<<10, 9
	if c.Validate() == nil {
		t.Error("Validate accepted less than 8 KB of argon2id memory per lane")
	}
}
