package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/internal/wiring"
	"github.com/pop3svc/pop3svc/session/auth/methodswitch"
	"github.com/pop3svc/pop3svc/store"
)

// methodCheckTimeout bounds the directory look-ups of a method switch.
const methodCheckTimeout = 30 * time.Second

// checkMethodSwitch refuses to switch auth.method to method while existing
// mailboxes could no longer log in with it, as Winpop does (see package
// methodswitch). -force skips the check.
func (c *cli) checkMethodSwitch(path, method string) error {
	var cur *config.Config
	var err error
	if _, statErr := os.Stat(path); statErr == nil {
		cur, err = config.Load(path)
	} else {
		cur, err = config.LoadEmbedded()
	}
	if err != nil {
		return err
	}
	if cur.Auth.Method == method {
		return nil
	}
	if _, err := os.Stat(cur.MailRoot); errors.Is(err, os.ErrNotExist) {
		return nil // no store yet: no mailbox to lose
	}
	return c.withStore(func(ctx context.Context, st store.Store, _ *config.Config) error {
		ctx, cancel := context.WithTimeout(ctx, methodCheckTimeout)
		defer cancel()
		err := methodswitch.Check(ctx, st, wiring.DirectoryOptionsFunc(cur.LDAP), method)
		var lock *methodswitch.LockoutError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &lock):
			return fmt.Errorf("%w; use -force to switch anyway", err)
		default:
			return fmt.Errorf("cannot check that mailboxes could log in with auth.method=%s: %w; use -force to switch anyway", method, err)
		}
	})
}
