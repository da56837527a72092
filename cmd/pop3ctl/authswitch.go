package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/engine/config"
	"github.com/pop3svc/pop3svc/session/auth/ldap"
	"github.com/pop3svc/pop3svc/session/auth/pam"
	"github.com/pop3svc/pop3svc/store"
)

// methodCheckTimeout bounds the directory look-ups of a method switch.
const methodCheckTimeout = 30 * time.Second

// maxNamed is how many mailboxes a refused switch names.
const maxNamed = 5

// checkMethodSwitch refuses to switch auth.method to method while existing
// mailboxes could no longer log in with it, as Winpop does: with the
// password file every mailbox needs a password-file password; with system
// accounts every mailbox needs a system user of its name; with the
// directory every mailbox needs an entry there. -force skips the check.
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
	var exists func(ctx context.Context, m store.MailboxInfo) (bool, string, error)
	switch method {
	case "passwordfile":
		exists = func(_ context.Context, m store.MailboxInfo) (bool, string, error) {
			return m.HasPassword, "no password-file password", nil
		}
	case "system":
		exists = func(_ context.Context, m store.MailboxInfo) (bool, string, error) {
			ok, err := pam.UserExists(m.Address.Mailbox)
			return ok, "no system user " + m.Address.Mailbox, err
		}
	case "directory":
		opts, err := ldap.FromConfig(cur.LDAP)
		if err != nil {
			return fmt.Errorf("cannot switch to the directory: %w", err)
		}
		dir, err := ldap.New(opts)
		if err != nil {
			return fmt.Errorf("cannot switch to the directory: %w", err)
		}
		defer dir.Close()
		exists = func(ctx context.Context, m store.MailboxInfo) (bool, string, error) {
			ok, err := dir.Exists(ctx, m.Address)
			return ok, "not in the directory", err
		}
	default:
		return nil // config.Set reports the invalid value
	}
	return c.withStore(func(ctx context.Context, st store.Store, _ *config.Config) error {
		ctx, cancel := context.WithTimeout(ctx, methodCheckTimeout)
		defer cancel()
		doms, err := st.ListDomains(ctx)
		if err != nil {
			return err
		}
		var lost []string
		total := 0
		for _, d := range doms {
			ms, err := st.ListMailboxes(ctx, d.Name)
			if err != nil {
				return err
			}
			for _, m := range ms {
				ok, why, err := exists(ctx, m)
				if err != nil {
					return fmt.Errorf("cannot check whether %s could log in with auth.method=%s: %w; use -force to switch anyway", m.Address, method, err)
				}
				if !ok {
					total++
					if len(lost) < maxNamed {
						lost = append(lost, m.Address.String()+" ("+why+")")
					}
				}
			}
		}
		if total == 0 {
			return nil
		}
		more := ""
		if total > len(lost) {
			more = fmt.Sprintf(" and %d more", total-len(lost))
		}
		return fmt.Errorf("%d mailbox(es) could no longer log in with auth.method=%s: %s%s; use -force to switch anyway",
			total, method, strings.Join(lost, ", "), more)
	})
}
