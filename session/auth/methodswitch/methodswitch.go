// Package methodswitch checks, before auth.method changes, that every
// existing mailbox could still log in with the new method, as Winpop
// refuses such a switch: with the password file every mailbox needs a
// password-file password; with system accounts every mailbox needs a
// system user of its name; with the directory every mailbox needs an entry
// there. pop3ctl set and the browser console both call Check.
package methodswitch

import (
	"context"
	"fmt"
	"strings"

	"github.com/pop3svc/pop3svc/session/auth/ldap"
	"github.com/pop3svc/pop3svc/session/auth/pam"
	"github.com/pop3svc/pop3svc/store"
)

// MaxNamed is how many locked-out mailboxes a refusal names.
const MaxNamed = 5

// LockoutError is a refused switch: Total mailboxes could no longer log in
// with Method; Named lists the first MaxNamed of them with the reason.
type LockoutError struct {
	Method string
	Total  int
	Named  []string
}

func (e *LockoutError) Error() string {
	more := ""
	if e.Total > len(e.Named) {
		more = fmt.Sprintf(" and %d more", e.Total-len(e.Named))
	}
	return fmt.Sprintf("%d mailbox(es) could no longer log in with auth.method=%s: %s%s",
		e.Total, e.Method, strings.Join(e.Named, ", "), more)
}

// Check returns nil when every mailbox of st could log in with method
// ("passwordfile", "system" or "directory"; see config.NormalizeAuthMethod),
// a *LockoutError naming those that could not, or another error when the
// check itself failed (the directory did not answer, the store could not
// be read). directory gives the options of the directory (the [ldap]
// table) for method "directory"; it is called only for that method. An
// unknown method is not checked: config.Set reports it. ctx bounds the
// directory look-ups.
func Check(ctx context.Context, st store.Store, directory func() (ldap.Options, error), method string) error {
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
		opts, err := directory()
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
		return nil
	}
	doms, err := st.ListDomains(ctx)
	if err != nil {
		return err
	}
	lock := &LockoutError{Method: method}
	for _, d := range doms {
		ms, err := st.ListMailboxes(ctx, d.Name)
		if err != nil {
			return err
		}
		for _, m := range ms {
			ok, why, err := exists(ctx, m)
			if err != nil {
				return fmt.Errorf("cannot check whether %s could log in with auth.method=%s: %w", m.Address, method, err)
			}
			if !ok {
				lock.Total++
				if len(lock.Named) < MaxNamed {
					lock.Named = append(lock.Named, m.Address.String()+" ("+why+")")
				}
			}
		}
	}
	if lock.Total == 0 {
		return nil
	}
	return lock
}
