// Package pam is the "system" authentication method: the login
// mailbox@domain is checked as the local system account "mailbox" through
// PAM (Linux-PAM, via cgo), with the PAM service named by auth.pam_service.
//
// A check runs pam_authenticate and then pam_acct_mgmt (an expired or
// locked account fails). PAM calls block and cannot be interrupted, so each
// check runs on a helper goroutine while the caller (a worker of the pool,
// never an event loop) waits at most Options.Timeout; at most
// Options.MaxConcurrent checks run at once, so a hung PAM module cannot
// pile up threads. Bad credentials and unknown users give
// auth.ErrAuthFailed; a missing or broken PAM configuration, a timeout or
// an unavailable authentication service give auth.ErrUnavailable.
//
// A suitable /etc/pam.d/pop3d:
//
//	auth    required pam_unix.so nodelay
//	account required pam_unix.so
//
// "nodelay" leaves the delay after a failure to the service's own
// brute-force protection. pam_unix reads /etc/shadow, which needs root
// (or membership of the shadow group); otherwise every check fails.
//
// Only plaintext mechanisms (USER/PASS, PLAIN, LOGIN) can use this method.
package pam

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"time"

	"github.com/pop3svc/pop3svc/session/auth"
	"github.com/pop3svc/pop3svc/store"
)

// Defaults for settings left at zero.
const (
	DefaultService       = "pop3d"
	DefaultTimeout       = 10 * time.Second
	DefaultMaxConcurrent = 16
	// maxPrompts bounds the conversation: a module that keeps asking is
	// broken.
	maxPrompts = 8
)

// Options configure the method.
type Options struct {
	Service       string        // PAM service name (auth.pam_service)
	Timeout       time.Duration // longest wait for one check
	MaxConcurrent int           // checks running at once
	// ConfDir, when set, is the folder of PAM service files used instead
	// of /etc/pam.d (Linux-PAM 1.4 and later); for tests.
	ConfDir string
}

// System is the "system" method. It implements auth.Method and is safe
// for concurrent use.
type System struct {
	opt   Options
	slots chan struct{}
}

var _ auth.Method = (*System)(nil)

// New returns the method. It does not call PAM.
func New(opt Options) (*System, error) {
	if opt.Service == "" {
		opt.Service = DefaultService
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.MaxConcurrent <= 0 {
		opt.MaxConcurrent = DefaultMaxConcurrent
	}
	if !Available {
		return nil, errors.New("pam: this pop3d was built without PAM support (install libpam0g-dev and rebuild)")
	}
	if opt.ConfDir != "" && !hasConfDir() {
		return nil, errors.New("pam: this Linux-PAM cannot read service files from another folder")
	}
	return &System{opt: opt, slots: make(chan struct{}, opt.MaxConcurrent)}, nil
}

// Name returns "system".
func (s *System) Name() string { return "system" }

// Challenge returns false: PAM gives out no password secrets.
func (s *System) Challenge() bool { return false }

// Plaintext checks password for the system user addr.Mailbox.
func (s *System) Plaintext(ctx context.Context, addr store.Address, password string) error {
	if password == "" {
		return fmt.Errorf("%w: empty password", auth.ErrAuthFailed)
	}
	if addr.Mailbox == "" {
		return fmt.Errorf("%w: empty user name", auth.ErrAuthFailed)
	}
	timer := time.NewTimer(s.opt.Timeout)
	defer timer.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: pam: %w", auth.ErrUnavailable, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("%w: pam: all %d checks busy for %v", auth.ErrUnavailable, s.opt.MaxConcurrent, s.opt.Timeout)
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-s.slots }()
		done <- s.check(addr.Mailbox, password)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: pam: %w", auth.ErrUnavailable, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("%w: pam: no answer within %v", auth.ErrUnavailable, s.opt.Timeout)
	}
}

// UserExists reports whether the system knows the user name (through
// NSS, as PAM would look it up). It lets the administrator's tool check
// that mailboxes can log in before switching to this method.
func UserExists(name string) (bool, error) {
	_, err := user.Lookup(name)
	if err == nil {
		return true, nil
	}
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return false, nil
	}
	return false, err
}
