package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/dkimkey"
)

// dkim is "dkim add DOMAIN": make the domain's DKIM signing key and print
// the DNS record to publish (RFC 6376 §3.6). A domain that has a key gets
// its record printed again.
func (c *cli) dkim() error {
	if len(c.args) != 2 || strings.ToLower(c.args[0]) != "add" {
		return usagef("usage: pop3ctl dkim add DOMAIN")
	}
	st, cfg, err := c.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	domain, err := store.CanonicalDomain(c.args[1])
	if err != nil {
		return err
	}
	if _, err := st.Domain(context.Background(), domain); err != nil {
		return fmt.Errorf("%s is not a served domain: %w", domain, err)
	}
	created := true
	key, err := dkimkey.Create(st.Root(), domain)
	if errors.Is(err, dkimkey.ErrExists) {
		created = false
		key, err = dkimkey.Load(st.Root(), domain)
	}
	if err != nil {
		return err
	}
	sel := cfg.Outbound.DKIMSelector
	rec, err := dkimkey.Record(sel, domain, key)
	if err != nil {
		return err
	}
	txt, _ := dkimkey.TXT(key)
	if c.json {
		c.emitJSON(map[string]any{"domain": domain, "selector": sel, "name": sel + "._domainkey." + domain, "txt": txt, "record": rec, "created": created})
		return nil
	}
	if !created {
		c.warn("%s already has a DKIM key; its record is:", domain)
	}
	fmt.Fprintln(c.stdout, rec)
	return nil
}
