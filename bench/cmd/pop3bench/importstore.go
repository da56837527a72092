package main

import (
	"context"
	"fmt"

	"github.com/pop3svc/pop3svc/bench/corpus"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// IdleArgon2 are the password-hash parameters of the idle mailboxes only:
// the logged-in idle scenario measures memory per session, and 10,000
// logins at the default cost would take minutes of CPU. The mailboxes that
// the sessions scenario uses keep filestore.DefaultArgon2, so the login
// cost of a full session is the real one.
var IdleArgon2 = filestore.Argon2Params{Time: 1, MemoryKiB: 8, Threads: 1, KeyLen: 32}

func init() {
	storeImport = func(ctx context.Context, root string, spec corpus.Spec) error {
		idle := spec.Idle
		spec.Idle = 0
		st, err := filestore.Open(root, filestore.Options{Node: 1})
		if err != nil {
			return fmt.Errorf("cannot open the store at %s: %w", root, err)
		}
		err = spec.Import(ctx, st, nil)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil || idle == 0 {
			return err
		}
		st, err = filestore.Open(root, filestore.Options{Node: 1, Argon2: IdleArgon2})
		if err != nil {
			return fmt.Errorf("cannot open the store at %s: %w", root, err)
		}
		defer st.Close()
		for i := 0; i < idle; i++ {
			addr := store.Address{Mailbox: corpus.IdleUser(i), Domain: spec.Domain}
			if err := st.CreateMailbox(ctx, addr, spec.Password); err != nil {
				return fmt.Errorf("cannot create %s: %w", addr, err)
			}
		}
		return nil
	}
}
