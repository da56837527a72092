package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// Demo mailbox made by pop3d -demo (make run) on an empty store, so that a
// newcomer can fetch mail at once. Without -demo an empty store stays
// empty: a packaged service never gets a mailbox with a password nobody
// chose.
const (
	demoDomain  = "example.test"
	demoMailbox = "demo"
)

// bootstrap (pop3d -demo) creates, when the store has no domain at all, the domain
// example.test, the mailbox demo@example.test with a random password and a
// welcome message, and prints a curl command that fetches it.
func bootstrap(rt *runtime, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	doms, err := rt.store.ListDomains(ctx)
	if err != nil {
		return err
	}
	if len(doms) > 0 {
		return nil
	}
	pass := rand.Text()[:16]
	addr := store.Address{Mailbox: demoMailbox, Domain: demoDomain}
	if err := rt.store.CreateDomain(ctx, demoDomain); err != nil {
		return err
	}
	if err := rt.store.CreateMailbox(ctx, addr, pass); err != nil {
		return err
	}
	msg := strings.Join([]string{
		"From: POP3 service <postmaster@" + demoDomain + ">",
		"To: " + addr.String(),
		"Subject: Welcome",
		"Date: " + time.Now().Format(time.RFC1123Z),
		"Message-ID: <welcome." + fmt.Sprint(time.Now().UnixNano()) + "@" + demoDomain + ">",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"",
		"This mailbox was made on the service's first start.",
		"Add your own domains and mailboxes with pop3ctl, then delete this one:",
		"  pop3ctl delete " + demoDomain + " -force",
		"",
	}, "\r\n")
	if _, err := rt.store.Deliver(ctx, addr, strings.NewReader(msg)); err != nil {
		return err
	}
	host, port := "127.0.0.1", "110"
	if srv := rt.pop3.Load(); srv != nil && len(srv.Addrs()) > 0 {
		if ta, ok := srv.Addrs()[0].(*net.TCPAddr); ok {
			port = fmt.Sprint(ta.Port)
			if !ta.IP.IsUnspecified() {
				host = ta.IP.String()
			}
		}
	}
	rt.log.Info("first start: created the demo mailbox", "mailbox", addr.String())
	fmt.Fprintf(out, "\nFirst start: created mailbox %s with a welcome message. Fetch it with:\n\n"+
		"  curl -s --user '%s:%s' pop3://%s/1\n\n",
		addr, addr, pass, net.JoinHostPort(host, port))
	return nil
}
