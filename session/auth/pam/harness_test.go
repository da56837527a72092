//go:build !nopam

package pam

import (
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// TestMain removes the pop3d and pop3ctl the end-to-end tests built
// (see package pop3dtest).
func TestMain(m *testing.M) { pop3dtest.Main(m) }
