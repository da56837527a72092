package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pop3svc/pop3svc/cmd/internal/audit"
	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/internal/wiring"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
	"github.com/pop3svc/pop3svc/store/queue"
)

// loadConfig reads the configuration as pop3d does.
func (c *cli) loadConfig() (*config.Config, string, error) {
	cfg, path, err := config.LoadDefault(c.configPath)
	if err != nil {
		return nil, path, fmt.Errorf("configuration: %w", err)
	}
	return cfg, path, nil
}

// openStore opens the mail store named by the configuration.
func (c *cli) openStore() (store.Store, *config.Config, error) {
	cfg, _, err := c.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	st, err := filestore.Open(cfg.MailRoot, filestore.Options{
		Node:               cfg.Node,
		DomainQuotaDefault: int64(cfg.Quota.DomainDefault),
		MaxMessageSize:     int64(cfg.SMTP.MaxMessageSize),
		LockLease:          cfg.LockLease.D(),
		Hash:               wiring.HashParams(cfg.Auth),
	})
	if err != nil {
		return nil, nil, err
	}
	return st, cfg, nil
}

// openQueue names the mail queue of the store's mail root for reading;
// it creates no folder (pop3ctl may run as another user than pop3d).
func (c *cli) openQueue(st store.Store) (store.Queue, error) {
	return queue.At(st.Root())
}

// withStore runs f with the store open.
func (c *cli) withStore(f func(ctx context.Context, st store.Store, cfg *config.Config) error) error {
	st, cfg, err := c.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	return f(context.Background(), st, cfg)
}

// describe turns an error into the one-line reason shown to the operator:
// naming errors lose their "invalid name: " prefix so that the rule broken
// comes first.
func describe(err error) string {
	msg := store.Reason(err)
	if errors.Is(err, store.ErrDomainNotEmpty) {
		msg += "; use -force to delete it with all its mailboxes and mail"
	}
	return msg
}

// target is a DOMAIN or MAILBOX@DOMAIN argument.
type target struct {
	domain string
	addr   store.Address
	isBox  bool
}

func parseTarget(s string) (target, error) {
	if strings.Contains(s, "@") {
		a, err := store.ParseAddress(s, "")
		if err != nil {
			return target{}, err
		}
		return target{domain: a.Domain, addr: a, isBox: true}, nil
	}
	d, err := store.CanonicalDomain(s)
	if err != nil {
		return target{}, err
	}
	return target{domain: d}, nil
}

// parseMailbox reads a MAILBOX@DOMAIN argument (a bare mailbox in the
// configured default domain is accepted too).
func parseMailbox(s string, cfg *config.Config) (store.Address, error) {
	def := ""
	if cfg != nil {
		def = cfg.DefaultDomain
	}
	return store.ParseAddress(s, def)
}

func (c *cli) add() error {
	if err := c.wantArgs(1, 1, "DOMAIN | MAILBOX@DOMAIN [-password P | -password-stdin]"); err != nil {
		return err
	}
	t, err := parseTarget(c.args[0])
	if err != nil {
		return err
	}
	if !t.isBox {
		if c.passwordSet || c.passwordStdin {
			return usagef("a domain takes no password")
		}
		return c.withStore(func(ctx context.Context, st store.Store, _ *config.Config) error {
			if err := st.CreateDomain(ctx, t.domain); err != nil {
				return err
			}
			c.audit("add", t.domain, "", "domain")
			c.say(map[string]any{"added": "domain", "domain": t.domain}, "Added domain %s.", t.domain)
			return nil
		})
	}
	pw, hasPW, err := c.readPassword()
	if err != nil {
		return err
	}
	return c.withStore(func(ctx context.Context, st store.Store, cfg *config.Config) error {
		if err := st.CreateMailbox(ctx, t.addr, pw); err != nil {
			return err
		}
		if !hasPW && cfg.Auth.Method == "passwordfile" {
			c.warn("%s has no password; with auth.method = passwordfile it cannot log in until \"pop3ctl changepwd\"", t.addr)
		}
		c.audit("add", t.addr.String(), "", "mailbox")
		c.say(map[string]any{"added": "mailbox", "mailbox": t.addr.String(), "password": hasPW}, "Added mailbox %s.", t.addr)
		return nil
	})
}

func (c *cli) delete() error {
	if err := c.wantArgs(1, 1, "DOMAIN [-force] | MAILBOX@DOMAIN"); err != nil {
		return err
	}
	t, err := parseTarget(c.args[0])
	if err != nil {
		return err
	}
	if t.isBox && c.force {
		return usagef("-force is only for deleting a domain")
	}
	return c.withStore(func(ctx context.Context, st store.Store, _ *config.Config) error {
		if t.isBox {
			if err := st.DeleteMailbox(ctx, t.addr); err != nil {
				return err
			}
			c.audit("delete", t.addr.String(), "mailbox", "")
			c.say(map[string]any{"deleted": "mailbox", "mailbox": t.addr.String()}, "Deleted mailbox %s.", t.addr)
			return nil
		}
		if err := st.DeleteDomain(ctx, t.domain, c.force); err != nil {
			return err
		}
		old := "domain"
		if c.force {
			old = "domain with its mailboxes"
		}
		c.audit("delete", t.domain, old, "")
		c.say(map[string]any{"deleted": "domain", "domain": t.domain}, "Deleted domain %s.", t.domain)
		return nil
	})
}

func (c *cli) rename() error {
	if err := c.wantArgs(2, 2, "MAILBOX@DOMAIN NEWNAME"); err != nil {
		return err
	}
	return c.withStore(func(ctx context.Context, st store.Store, cfg *config.Config) error {
		from, err := parseMailbox(c.args[0], cfg)
		if err != nil {
			return err
		}
		to := c.args[1]
		if m, d, ok := strings.Cut(to, "@"); ok {
			if !strings.EqualFold(d, from.Domain) {
				return fmt.Errorf("a mailbox can only be renamed within its domain (%s)", from.Domain)
			}
			to = m
		}
		to = strings.ToLower(to)
		if err := store.ValidateMailbox(to); err != nil {
			return err
		}
		if err := st.RenameMailbox(ctx, from, to); err != nil {
			return err
		}
		na := store.Address{Mailbox: to, Domain: from.Domain}
		c.audit("rename", from.String(), from.String(), na.String())
		c.say(map[string]any{"renamed": from.String(), "to": na.String()}, "Renamed mailbox %s to %s.", from, na)
		return nil
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func quotaText(q int64) string {
	if q == 0 {
		return "none"
	}
	return config.Size(q).String()
}

// mailboxJSON is a mailbox in -json output.
type mailboxJSON struct {
	Mailbox     string `json:"mailbox"`
	Messages    int    `json:"messages"`
	Bytes       int64  `json:"bytes"`
	Quota       int64  `json:"quota"`
	Locked      bool   `json:"locked"`
	InUse       bool   `json:"in_use"`
	HasPassword bool   `json:"has_password"`
}

func toMailboxJSON(m store.MailboxInfo) mailboxJSON {
	return mailboxJSON{Mailbox: m.Address.String(), Messages: m.Messages, Bytes: m.Bytes, Quota: m.Quota,
		Locked: m.Locked, InUse: m.InUse, HasPassword: m.HasPassword}
}

// domainJSON is a domain in -json output.
type domainJSON struct {
	Domain    string `json:"domain"`
	Mailboxes int    `json:"mailboxes"`
	Messages  int    `json:"messages"`
	Bytes     int64  `json:"bytes"`
	Locked    bool   `json:"locked"`
}

func toDomainJSON(d store.DomainInfo) domainJSON {
	return domainJSON{Domain: d.Name, Mailboxes: d.Mailboxes, Messages: d.Messages, Bytes: d.Bytes, Locked: d.Locked}
}

func (c *cli) list() error {
	if err := c.wantArgs(0, 1, "[DOMAIN]"); err != nil {
		return err
	}
	return c.withStore(func(ctx context.Context, st store.Store, _ *config.Config) error {
		if len(c.args) == 0 {
			ds, err := st.ListDomains(ctx)
			if err != nil {
				return err
			}
			if c.json {
				out := make([]domainJSON, 0, len(ds))
				for _, d := range ds {
					out = append(out, toDomainJSON(d))
				}
				c.emitJSON(map[string]any{"domains": out})
				return nil
			}
			rows := make([][]string, 0, len(ds))
			for _, d := range ds {
				rows = append(rows, []string{d.Name, strconv.Itoa(d.Mailboxes), yesNo(d.Locked)})
			}
			c.table([]string{"DOMAIN", "MAILBOXES", "LOCKED"}, rows)
			return nil
		}
		d, err := store.CanonicalDomain(c.args[0])
		if err != nil {
			return err
		}
		ms, err := st.ListMailboxes(ctx, d)
		if err != nil {
			return err
		}
		if c.json {
			out := make([]mailboxJSON, 0, len(ms))
			for _, m := range ms {
				out = append(out, toMailboxJSON(m))
			}
			c.emitJSON(map[string]any{"domain": d, "mailboxes": out})
			return nil
		}
		rows := make([][]string, 0, len(ms))
		for _, m := range ms {
			rows = append(rows, []string{m.Address.String(), strconv.Itoa(m.Messages), strconv.FormatInt(m.Bytes, 10),
				quotaText(m.Quota), yesNo(m.Locked), yesNo(m.InUse), yesNo(m.HasPassword)})
		}
		c.table([]string{"MAILBOX", "MESSAGES", "BYTES", "QUOTA", "LOCKED", "IN USE", "PASSWORD"}, rows)
		return nil
	})
}

func (c *cli) lock(lock bool) error {
	if err := c.wantArgs(1, 1, "DOMAIN | MAILBOX@DOMAIN"); err != nil {
		return err
	}
	t, err := parseTarget(c.args[0])
	if err != nil {
		return err
	}
	verb := map[bool]string{true: "Locked", false: "Unlocked"}[lock]
	return c.withStore(func(ctx context.Context, st store.Store, _ *config.Config) error {
		name := t.domain
		var err error
		switch {
		case t.isBox && lock:
			err = st.LockMailbox(ctx, t.addr)
		case t.isBox:
			err = st.UnlockMailbox(ctx, t.addr)
		case lock:
			err = st.LockDomain(ctx, t.domain)
		default:
			err = st.UnlockDomain(ctx, t.domain)
		}
		if err != nil {
			return err
		}
		kind := "domain"
		if t.isBox {
			kind, name = "mailbox", t.addr.String()
		}
		c.audit(strings.ToLower(verb[:len(verb)-2]), name, map[bool]string{true: "unlocked", false: "locked"}[lock], strings.ToLower(verb))
		c.say(map[string]any{strings.ToLower(verb): kind, kind: name}, "%s %s %s.", verb, kind, name)
		return nil
	})
}

// statDomain is one domain in stat's output.
type statDomain struct {
	Domain    string        `json:"domain"`
	Messages  int           `json:"messages"`
	Bytes     int64         `json:"bytes"`
	Mailboxes []mailboxJSON `json:"mailboxes"`
}

func (c *cli) stat() error {
	if err := c.wantArgs(0, 1, "[DOMAIN]"); err != nil {
		return err
	}
	return c.withStore(func(ctx context.Context, st store.Store, _ *config.Config) error {
		var names []string
		if len(c.args) == 1 {
			d, err := store.CanonicalDomain(c.args[0])
			if err != nil {
				return err
			}
			names = []string{d}
		} else {
			ds, err := st.ListDomains(ctx)
			if err != nil {
				return err
			}
			for _, d := range ds {
				names = append(names, d.Name)
			}
		}
		var out []statDomain
		var totalMsgs int
		var totalBytes int64
		for _, d := range names {
			ms, err := st.ListMailboxes(ctx, d)
			if err != nil {
				return err
			}
			sd := statDomain{Domain: d, Mailboxes: make([]mailboxJSON, 0, len(ms))}
			for _, m := range ms {
				sd.Messages += m.Messages
				sd.Bytes += m.Bytes
				sd.Mailboxes = append(sd.Mailboxes, toMailboxJSON(m))
			}
			totalMsgs += sd.Messages
			totalBytes += sd.Bytes
			out = append(out, sd)
		}
		q, err := c.openQueue(st)
		if err != nil {
			return err
		}
		queued, badmail, err := q.Depth()
		if err != nil {
			return err
		}
		if c.json {
			if out == nil {
				out = []statDomain{}
			}
			c.emitJSON(map[string]any{"domains": out, "messages": totalMsgs, "bytes": totalBytes, "queued": queued, "badmail": badmail})
			return nil
		}
		var rows [][]string
		for _, sd := range out {
			for _, m := range sd.Mailboxes {
				rows = append(rows, []string{m.Mailbox, strconv.Itoa(m.Messages), strconv.FormatInt(m.Bytes, 10)})
			}
			rows = append(rows, []string{"total " + sd.Domain, strconv.Itoa(sd.Messages), strconv.FormatInt(sd.Bytes, 10)})
		}
		if len(c.args) == 0 {
			rows = append(rows, []string{"total", strconv.Itoa(totalMsgs), strconv.FormatInt(totalBytes, 10)})
		}
		c.table([]string{"MAILBOX", "MESSAGES", "BYTES"}, rows)
		if len(c.args) == 0 {
			fmt.Fprintf(c.stdout, "\nqueue: %d message(s) waiting for delivery; Badmail: %d message(s)\n", queued, badmail)
		}
		return nil
	})
}

func (c *cli) changepwd() error {
	if err := c.wantArgs(1, 1, "MAILBOX@DOMAIN -password P | -password-stdin | -hash HASH"); err != nil {
		return err
	}
	if c.hashSet {
		if c.passwordSet || c.passwordStdin {
			return usagef("give a password or -hash, not both")
		}
		return c.changeHash()
	}
	if !c.passwordSet && !c.passwordStdin {
		return usagef("changepwd needs -password P, -password-stdin or -hash HASH")
	}
	pw, _, err := c.readPassword()
	if err != nil {
		return err
	}
	return c.withStore(func(ctx context.Context, st store.Store, cfg *config.Config) error {
		a, err := parseMailbox(c.args[0], cfg)
		if err != nil {
			return err
		}
		if _, err := st.Mailbox(ctx, a); err != nil {
			return err
		}
		if err := st.SetPassword(ctx, a, pw); err != nil {
			return err
		}
		if cfg.Auth.Method != "passwordfile" {
			c.warn("auth.method is %s: the password-file password is not used for logins", cfg.Auth.Method)
		}
		c.audit("password", a.String(), audit.Hidden, audit.Hidden)
		c.say(map[string]any{"changed": "password", "mailbox": a.String()}, "Changed the password of %s.", a)
		return nil
	})
}

// changeHash sets a password from a bcrypt or SHA-512-crypt hash brought
// from another system (changepwd -hash); the first successful login
// rehashes it with auth.hash.
func (c *cli) changeHash() error {
	return c.withStore(func(ctx context.Context, st store.Store, cfg *config.Config) error {
		a, err := parseMailbox(c.args[0], cfg)
		if err != nil {
			return err
		}
		if _, err := st.Mailbox(ctx, a); err != nil {
			return err
		}
		hs, ok := st.(interface {
			SetPasswordHash(ctx context.Context, addr store.Address, hash string) error
		})
		if !ok {
			return errors.New("this store does not take password hashes")
		}
		if err := hs.SetPasswordHash(ctx, a, c.hash); err != nil {
			return err
		}
		if cfg.Auth.Method != "passwordfile" {
			c.warn("auth.method is %s: the password-file password is not used for logins", cfg.Auth.Method)
		}
		c.audit("password", a.String(), audit.Hidden, audit.Hidden+" hash")
		c.say(map[string]any{"changed": "password", "mailbox": a.String(), "hash": true},
			"Set the password hash of %s; its first login rehashes it with %s.", a, cfg.Auth.Hash)
		return nil
	})
}

func (c *cli) quota() error {
	if err := c.wantArgs(1, 2, "MAILBOX@DOMAIN [SIZE|none]"); err != nil {
		return err
	}
	var bytes int64 = -1
	if len(c.args) == 2 {
		if strings.EqualFold(c.args[1], "none") {
			bytes = 0
		} else {
			z, err := config.ParseSize(c.args[1])
			if err != nil {
				return usagef("quota: %v", err)
			}
			bytes = int64(z)
		}
	}
	return c.withStore(func(ctx context.Context, st store.Store, cfg *config.Config) error {
		a, err := parseMailbox(c.args[0], cfg)
		if err != nil {
			return err
		}
		if bytes >= 0 {
			old, err := st.Quota(ctx, a)
			if err != nil {
				return err
			}
			if err := st.SetQuota(ctx, a, bytes); err != nil {
				return err
			}
			c.audit("quota", a.String(), quotaText(old), quotaText(bytes))
		}
		q, err := st.Quota(ctx, a)
		if err != nil {
			return err
		}
		msgs, used, err := st.Usage(ctx, a)
		if err != nil {
			return err
		}
		v := map[string]any{"mailbox": a.String(), "quota": q, "messages": msgs, "bytes": used}
		if bytes >= 0 {
			c.say(v, "Quota of %s set to %s (%d bytes used).", a, quotaText(q), used)
		} else {
			c.say(v, "Quota of %s: %s (%d bytes used in %d messages).", a, quotaText(q), used, msgs)
		}
		return nil
	})
}
