package methodswitch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/session/auth/ldap"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

func TestCheckPasswordFile(t *testing.T) {
	ctx := context.Background()
	st, err := filestore.Open(t.TempDir(), filestore.Options{Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := Check(ctx, st, noDirectory, "passwordfile"); err != nil {
		t.Fatalf("empty store: Check = %v, want nil", err)
	}
	if err := st.CreateDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateMailbox(ctx, store.Address{Mailbox: "withpw", Domain: "example.com"}, "pw"); err != nil {
		t.Fatal(err)
	}
	if err := Check(ctx, st, noDirectory, "passwordfile"); err != nil {
		t.Fatalf("every mailbox has a password: Check = %v, want nil", err)
	}
	for i := range MaxNamed + 2 {
		if err := st.CreateMailbox(ctx, store.Address{Mailbox: fmt.Sprintf("nopw%d", i), Domain: "example.com"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	err = Check(ctx, st, noDirectory, "passwordfile")
	var le *LockoutError
	if !errors.As(err, &le) {
		t.Fatalf("Check = %v, want a *LockoutError", err)
	}
	if le.Total != MaxNamed+2 || len(le.Named) != MaxNamed {
		t.Errorf("Total %d Named %d, want %d and %d", le.Total, len(le.Named), MaxNamed+2, MaxNamed)
	}
	msg := err.Error()
	for _, w := range []string{"7 mailbox(es) could no longer log in with auth.method=passwordfile", "nopw0@example.com (no password-file password)", " and 2 more"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
	if err := Check(ctx, st, noDirectory, "bogus"); err != nil {
		t.Errorf("unknown method: Check = %v, want nil (the configuration reports it)", err)
	}
}

func TestCheckSystem(t *testing.T) {
	ctx := context.Background()
	st, err := filestore.Open(t.TempDir(), filestore.Options{Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.CreateDomain(ctx, "example.com")
	st.CreateMailbox(ctx, store.Address{Mailbox: "root", Domain: "example.com"}, "")
	if err := Check(ctx, st, noDirectory, "system"); err != nil {
		t.Fatalf("root exists on every system: Check = %v", err)
	}
	st.CreateMailbox(ctx, store.Address{Mailbox: "zz-no-such-user-here", Domain: "example.com"}, "")
	err = Check(ctx, st, noDirectory, "system")
	if err == nil || !strings.Contains(err.Error(), "no system user zz-no-such-user-here") {
		t.Errorf("Check = %v, want a lockout naming zz-no-such-user-here", err)
	}
}

// noDirectory stands for an [ldap] table that the checks of the other
// methods must not consult.
func noDirectory() (ldap.Options, error) {
	return ldap.Options{}, errors.New("the directory was consulted for another method")
}
