package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/durable"
)

// backup writes the whole mail store (key, domains, mailboxes with
// credentials, quotas and locks, messages with their UIDs) to FILE, or to
// standard output for "-". It works while pop3d runs: each mailbox is
// copied at one instant under its session lock (a user logging in at that
// moment gets [IN-USE]); mail delivered during the backup is in the store
// and in the next backup. FILE is written to a temporary name, fsynced and
// renamed, so a FILE that exists is complete.
func (c *cli) backup() error {
	if err := c.wantArgs(1, 1, "FILE | -"); err != nil {
		return err
	}
	return c.withStore(func(ctx context.Context, st store.Store, _ *config.Config) error {
		b, ok := st.(store.Backups)
		if !ok {
			return errors.New("this mail store cannot be backed up")
		}
		dest := c.args[0]
		var w io.Writer = c.stdout
		var f *os.File
		tmp := ""
		if dest != "-" {
			var err error
			tmp = dest + ".tmp"
			f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return fmt.Errorf("cannot write the backup: %w", err)
			}
			defer os.Remove(tmp)
			defer f.Close()
			w = f
		}
		rep, err := b.Backup(ctx, w, store.BackupOptions{})
		if err != nil {
			return fmt.Errorf("backup failed: %w", err)
		}
		if f != nil {
			if err := f.Sync(); err != nil {
				return fmt.Errorf("cannot write the backup: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("cannot write the backup: %w", err)
			}
			if err := os.Rename(tmp, dest); err != nil {
				return fmt.Errorf("cannot write the backup: %w", err)
			}
			if err := durable.SyncDir(filepath.Dir(dest)); err != nil {
				return fmt.Errorf("cannot write the backup: %w", err)
			}
		}
		if dest == "-" {
			fmt.Fprintf(c.stderr, "pop3ctl: backed up %d domains, %d mailboxes, %d messages (%d octets)\n", rep.Domains, rep.Mailboxes, rep.Messages, rep.Octets)
			return nil
		}
		c.say(map[string]any{"file": dest, "domains": rep.Domains, "mailboxes": rep.Mailboxes, "messages": rep.Messages, "octets": rep.Octets},
			"Backed up %d domains, %d mailboxes, %d messages (%d octets) to %s.", rep.Domains, rep.Mailboxes, rep.Messages, rep.Octets, dest)
		return nil
	})
}

// restore merges a backup into the store: it deletes and replaces
// nothing. Missing domains and mailboxes come back with their passwords,
// quotas and locks; every archived message whose UID a mailbox lacks comes
// back with that UID. Mail delivered after the backup stays. It works while
// pop3d runs; restoring into an empty mail root also restores the store key
// (then restart pop3d).
func (c *cli) restore() error {
	if err := c.wantArgs(1, 1, "FILE | -"); err != nil {
		return err
	}
	return c.withStore(func(ctx context.Context, st store.Store, _ *config.Config) error {
		b, ok := st.(store.Backups)
		if !ok {
			return errors.New("this mail store cannot be restored into")
		}
		var r io.Reader = c.stdin
		if c.args[0] != "-" {
			f, err := os.Open(c.args[0])
			if err != nil {
				return fmt.Errorf("cannot read the backup: %w", err)
			}
			defer f.Close()
			r = f
		}
		rep, err := b.Restore(ctx, r)
		if rep.Domains+rep.Mailboxes+rep.Messages > 0 || rep.KeyReplaced {
			c.audit("restore", c.args[0], "", fmt.Sprintf("%d domains, %d mailboxes, %d messages added", rep.Domains, rep.Mailboxes, rep.Messages))
		}
		if err != nil {
			return fmt.Errorf("restore stopped after adding %d domains, %d mailboxes, %d messages: %w", rep.Domains, rep.Mailboxes, rep.Messages, err)
		}
		if rep.KeyReplaced {
			c.warn("the store key was replaced by the backup's: restart pop3d so that it uses it")
		}
		c.say(map[string]any{"domains": rep.Domains, "mailboxes": rep.Mailboxes, "messages": rep.Messages, "present": rep.Present, "octets": rep.Octets, "key_replaced": rep.KeyReplaced},
			"Restored %d domains, %d mailboxes, %d messages (%d octets); %d messages were already present.", rep.Domains, rep.Mailboxes, rep.Messages, rep.Octets, rep.Present)
		return nil
	})
}
