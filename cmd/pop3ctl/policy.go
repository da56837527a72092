package main

import (
	"strings"

	"github.com/pop3svc/pop3svc/session/pop3"
	"github.com/pop3svc/pop3svc/store"
)

// expire shows or sets the retention of one domain or mailbox (EXPIRE,
// RFC 2449 section 6.7): pop3.expire_domains or pop3.expire_mailboxes
// gets, loses ("default") or replaces NAME's entry, through set, which
// tells the running service.
func (c *cli) expire() error {
	if err := c.wantArgs(1, 2, "DOMAIN|MAILBOX@DOMAIN [DAYS|never|default]"); err != nil {
		return err
	}
	name, mailbox := strings.TrimSpace(c.args[0]), strings.Contains(c.args[0], "@")
	key := "pop3.expire_domains"
	var canon string
	if mailbox {
		a, err := store.ParseAddress(name, "")
		if err != nil {
			return err
		}
		canon, key = a.String(), "pop3.expire_mailboxes"
	} else {
		d, err := store.CanonicalDomain(name)
		if err != nil {
			return err
		}
		canon = d
	}
	cfg, _, err := c.loadConfig()
	if err != nil {
		return err
	}
	cur := cfg.POP3.ExpireDomains
	if mailbox {
		cur = cfg.POP3.ExpireMailboxes
	}
	if len(c.args) == 1 {
		p := &pop3.Policy{}
		if cfg.POP3.Expire != "" {
			r, err := pop3.ParseRetention(cfg.POP3.Expire)
			if err != nil {
				return err
			}
			p.Expire = &r
		}
		if p.ExpireDomains, err = pop3.ParseRetentions(cfg.POP3.ExpireDomains, false); err != nil {
			return err
		}
		if p.ExpireMailboxes, err = pop3.ParseRetentions(cfg.POP3.ExpireMailboxes, true); err != nil {
			return err
		}
		a := store.Address{Mailbox: "", Domain: canon}
		if mailbox {
			a, _ = store.ParseAddress(canon, "")
		}
		r := p.RetentionFor(a)
		configured := p.Expire != nil || len(p.ExpireDomains) > 0 || len(p.ExpireMailboxes) > 0
		text := r.String()
		if !configured {
			text = "none (EXPIRE not advertised)"
		}
		c.say(map[string]any{"name": canon, "expire": r.String(), "configured": configured}, "%s %s", canon, text)
		return nil
	}
	value := strings.TrimSpace(c.args[1])
	var next []string
	for _, e := range cur {
		n, _, _ := strings.Cut(e, "=")
		if k, err := normName(n, mailbox); err == nil && k == canon {
			continue
		}
		next = append(next, e)
	}
	if !strings.EqualFold(value, "default") {
		r, err := pop3.ParseRetention(value)
		if err != nil {
			return err
		}
		next = append(next, canon+"="+strings.ToLower(r.String()))
	}
	c.args = []string{key, strings.Join(next, ",")}
	return c.set()
}

func normName(n string, mailbox bool) (string, error) {
	if mailbox {
		a, err := store.ParseAddress(strings.TrimSpace(n), "")
		return a.String(), err
	}
	return store.CanonicalDomain(strings.TrimSpace(n))
}
