//go:build nopam

package pam

import (
	"fmt"

	"github.com/pop3svc/pop3svc/session/auth"
)

// Available reports whether this build can talk to PAM. This one was built
// with the "nopam" tag, without Linux-PAM's headers.
const Available = false

// check fails: there is no PAM in this build.
func (s *System) check(user, password string) error {
	return fmt.Errorf("%w: this build has no PAM support (install libpam0g-dev and rebuild without the nopam tag)", auth.ErrUnavailable)
}

func hasConfDir() bool { return false }
