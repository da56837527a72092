//go:build !nopam

package pam

import (
	"errors"
	"fmt"

	gopam "github.com/msteinert/pam/v2"

	"github.com/pop3svc/pop3svc/session/auth"
)

// Available reports whether this build can talk to PAM. Builds with the
// "nopam" tag (machines without libpam0g-dev) cannot.
const Available = true

// hasConfDir reports whether Linux-PAM can read service files from another folder.
func hasConfDir() bool { return gopam.CheckPamHasStartConfdir() }

// check runs one PAM transaction.
func (s *System) check(user, password string) error {
	prompts := 0
	conv := gopam.ConversationFunc(func(style gopam.Style, msg string) (string, error) {
		prompts++
		if prompts > maxPrompts {
			return "", errors.New("too many PAM prompts")
		}
		switch style {
		case gopam.PromptEchoOff:
			return password, nil
		case gopam.PromptEchoOn:
			return user, nil
		case gopam.ErrorMsg, gopam.TextInfo:
			return "", nil
		}
		return "", fmt.Errorf("unsupported PAM prompt style %d", style)
	})
	var (
		t   *gopam.Transaction
		err error
	)
	if s.opt.ConfDir != "" {
		t, err = gopam.StartConfDir(s.opt.Service, user, conv, s.opt.ConfDir)
	} else {
		t, err = gopam.Start(s.opt.Service, user, conv)
	}
	if err != nil {
		return fmt.Errorf("%w: pam start %q: %w", auth.ErrUnavailable, s.opt.Service, err)
	}
	defer t.End()
	if err := t.Authenticate(gopam.DisallowNullAuthtok | gopam.Silent); err != nil {
		return classify("authenticate", err)
	}
	if err := t.AcctMgmt(gopam.DisallowNullAuthtok | gopam.Silent); err != nil {
		return classify("account", err)
	}
	return nil
}

// classify maps a PAM error to ErrAuthFailed (the user's fault) or
// ErrUnavailable (the system's).
func classify(step string, err error) error {
	var pe gopam.Error
	if errors.As(err, &pe) {
		switch pe {
		case gopam.ErrAuth, gopam.ErrUserUnknown, gopam.ErrMaxtries, gopam.ErrPermDenied,
			gopam.ErrAcctExpired, gopam.ErrNewAuthtokReqd, gopam.ErrCredInsufficient,
			gopam.ErrCredExpired, gopam.ErrAuthtokExpired:
			return fmt.Errorf("%w: pam %s: %w", auth.ErrAuthFailed, step, err)
		}
	}
	return fmt.Errorf("%w: pam %s: %w", auth.ErrUnavailable, step, err)
}
