package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/migrate"
)

// importFlags are the flags of pop3ctl import.
type importFlags struct {
	from       string
	tls, stls  bool
	caFile     string
	insecure   bool
	user       string
	users      string
	verify     bool
	uidlFormat string
	xuidl      bool
}

// importJob is one old mailbox and where it goes.
type importJob struct {
	addr store.Address
	open func(ctx context.Context) (migrate.Source, error)
}

func (c *cli) importMail() error {
	if len(c.args) == 0 {
		return usagef("usage: pop3ctl import maildir|pop3|mbox|store ... (pop3ctl help)")
	}
	kind := strings.ToLower(c.args[0])
	c.args = c.args[1:]
	f := c.imp
	if kind != "pop3" && (f.from != "" || f.tls || f.stls || f.user != "" || f.caFile != "" || f.insecure || c.passwordStdin) {
		return usagef("-from, -tls, -stls, -user, -cafile, -insecure and -password-stdin are for import pop3")
	}
	if kind != "maildir" && (f.uidlFormat != "" || f.xuidl) {
		return usagef("-uidl-format and -xuidl are for import maildir")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, cfg, err := c.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	dst, ok := st.(migrate.Target)
	if !ok {
		return errors.New("the mail store cannot import")
	}
	jobs, err := c.importJobs(ctx, kind, cfg)
	if err != nil {
		return err
	}
	var results []migrate.Result
	failed := false
	for _, j := range jobs {
		res := c.importOne(ctx, st, dst, j)
		if res.Error != "" {
			failed = true
		}
		for _, d := range res.Differences {
			if d.Fails() {
				failed = true
			}
		}
		results = append(results, res)
		if ctx.Err() != nil {
			break
		}
	}
	c.importSummary(results)
	if ctx.Err() != nil {
		return errors.New("interrupted: run the same command again to carry on")
	}
	if failed {
		return errors.New("some mailboxes were not imported whole (see above)")
	}
	return nil
}

// importJobs turns the command line into the mailboxes to import.
func (c *cli) importJobs(ctx context.Context, kind string, cfg *config.Config) ([]importJob, error) {
	f := c.imp
	one := func(form string) (string, store.Address, bool, error) {
		if f.users != "" {
			if err := c.wantArgs(1, 1, "-users FILE DOMAIN"); err != nil {
				return "", store.Address{}, false, err
			}
			return "", store.Address{}, true, nil
		}
		if err := c.wantArgs(2, 2, form); err != nil {
			return "", store.Address{}, false, err
		}
		a, err := parseMailbox(c.args[1], cfg)
		return c.args[0], a, false, err
	}
	switch kind {
	case "maildir":
		opts := migrate.MaildirOptions{UIDLFormat: f.uidlFormat, XUIDL: f.xuidl}
		src := func(dir string) func(context.Context) (migrate.Source, error) {
			return func(context.Context) (migrate.Source, error) { return migrate.OpenMaildir(dir, opts) }
		}
		dir, a, many, err := one("DIR MAILBOX@DOMAIN")
		if err != nil {
			return nil, err
		}
		if !many {
			return []importJob{{a, src(dir)}}, nil
		}
		return c.usersJobs(cfg, 2, func(fields []string, base string) func(context.Context) (migrate.Source, error) {
			return src(relTo(base, fields[1]))
		})
	case "mbox":
		src := func(p string) func(context.Context) (migrate.Source, error) {
			return func(context.Context) (migrate.Source, error) { return migrate.OpenMbox(p) }
		}
		file, a, many, err := one("FILE MAILBOX@DOMAIN")
		if err != nil {
			return nil, err
		}
		if !many {
			return []importJob{{a, src(file)}}, nil
		}
		return c.usersJobs(cfg, 2, func(fields []string, base string) func(context.Context) (migrate.Source, error) {
			return src(relTo(base, fields[1]))
		})
	case "pop3":
		if f.from == "" {
			return nil, usagef("usage: pop3ctl import pop3 -from HOST:PORT [-tls|-stls] -user U -password-stdin MAILBOX@DOMAIN")
		}
		if f.tls && f.stls {
			return nil, usagef("give -tls or -stls, not both")
		}
		o := pop3Options{addr: f.from, tls: f.tls, stls: f.stls, caFile: f.caFile, insecure: f.insecure}
		src := func(o pop3Options) func(context.Context) (migrate.Source, error) {
			return func(ctx context.Context) (migrate.Source, error) { return dialPOP3(ctx, o) }
		}
		if f.users != "" {
			if err := c.wantArgs(1, 1, "-from HOST:PORT -users FILE DOMAIN"); err != nil {
				return nil, err
			}
			if fi, err := os.Stat(f.users); err == nil && fi.Mode().Perm()&0o077 != 0 {
				return nil, fmt.Errorf("%s holds passwords but others may read it: chmod 600 it", f.users)
			}
			return c.usersJobs(cfg, 3, func(fields []string, _ string) func(context.Context) (migrate.Source, error) {
				o := o
				o.user, o.password = fields[1], fields[2]
				return src(o)
			})
		}
		if err := c.wantArgs(1, 1, "-from HOST:PORT [-tls|-stls] -user U -password-stdin MAILBOX@DOMAIN"); err != nil {
			return nil, err
		}
		if f.user == "" || !c.passwordStdin {
			return nil, usagef("import pop3 needs -user and -password-stdin (or -users FILE)")
		}
		pw, _, err := c.readPassword()
		if err != nil {
			return nil, err
		}
		a, err := parseMailbox(c.args[0], cfg)
		if err != nil {
			return nil, err
		}
		o.user, o.password = f.user, pw
		return []importJob{{a, src(o)}}, nil
	case "store":
		if err := c.wantArgs(1, 1, "DIR"); err != nil {
			return nil, err
		}
		boxes, skipped, err := migrate.WinMailRoot(c.args[0])
		if err != nil {
			return nil, err
		}
		for _, s := range skipped {
			c.warn("%s: not a domain or mailbox this store allows; skipped", s)
		}
		var jobs []importJob
		for _, b := range boxes {
			jobs = append(jobs, importJob{b.Address, func(context.Context) (migrate.Source, error) { return b.Source(), nil }})
		}
		return jobs, nil
	}
	return nil, usagef("unknown import source %q: maildir, pop3, mbox or store", kind)
}

func relTo(base, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// usersJobs reads a users file: one mailbox a line, "MAILBOX FIELD..."
// with n fields in all; '#' starts a comment. Relative paths are taken
// from the file's folder.
func (c *cli) usersJobs(cfg *config.Config, n int, src func(fields []string, base string) func(context.Context) (migrate.Source, error)) ([]importJob, error) {
	dom := c.args[0]
	fh, err := os.Open(c.imp.users)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var jobs []importJob
	sc := bufio.NewScanner(fh)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != n {
			return nil, fmt.Errorf("%s line %d: want %d fields", c.imp.users, ln, n)
		}
		a, err := parseMailbox(fields[0]+"@"+dom, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", c.imp.users, ln, err)
		}
		jobs = append(jobs, importJob{a, src(fields, filepath.Dir(c.imp.users))})
	}
	return jobs, sc.Err()
}

// importOne imports (and with -verify checks) one mailbox, creating its
// domain and mailbox (without a password) when missing, once the old
// mailbox opened.
func (c *cli) importOne(ctx context.Context, st store.Store, dst migrate.Target, j importJob) (res migrate.Result) {
	res.Mailbox = j.addr.String()
	fail := func(err error) migrate.Result {
		res.Error = store.Reason(err)
		return res
	}
	src, err := j.open(ctx)
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	if err := st.CreateDomain(ctx, j.addr.Domain); err != nil && !errors.Is(err, store.ErrDomainExists) {
		return fail(err)
	}
	if err := st.CreateMailbox(ctx, j.addr, ""); err != nil && !errors.Is(err, store.ErrMailboxExists) {
		return fail(err)
	} else if err == nil {
		c.warn("%s created without a password: set one with pop3ctl changepwd", j.addr)
	}
	var opts migrate.Options
	if tty(os.Stderr) && !c.json {
		var last time.Time
		opts.Progress = func(p migrate.Progress) {
			if time.Since(last) < 200*time.Millisecond && p.Done != p.Total {
				return
			}
			last = time.Now()
			fmt.Fprintf(c.stderr, "\r%s: %d/%d messages, %d imported, %.1f MB ", p.Mailbox, p.Done, p.Total, p.Imported, float64(p.Bytes)/1e6)
			if p.Done == p.Total {
				fmt.Fprintln(c.stderr)
			}
		}
	}
	res, err = migrate.Import(ctx, dst, j.addr, src, opts)
	if err != nil {
		return res
	}
	if c.imp.verify {
		diffs, err := migrate.Verify(ctx, dst, j.addr, src)
		if err != nil {
			return fail(fmt.Errorf("verify: %w", err))
		}
		res.Differences, res.Verified = diffs, true
	}
	return res
}

func tty(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// importSummary prints the table (or JSON) of an import run.
func (c *cli) importSummary(results []migrate.Result) {
	var msgs int
	var bytes int64
	var secs float64
	for _, r := range results {
		msgs += r.Imported
		bytes += r.Bytes
		secs += r.Seconds
	}
	rate := func(v float64) float64 {
		if secs <= 0 {
			return 0
		}
		return v / secs
	}
	if c.json {
		c.emitJSON(map[string]any{"mailboxes": results, "imported": msgs, "bytes": bytes, "seconds": secs,
			"messages_per_second": rate(float64(msgs)), "mb_per_second": rate(float64(bytes) / 1e6)})
		return
	}
	var rows [][]string
	for _, r := range results {
		status := "ok"
		switch {
		case r.Error != "":
			status = "FAILED: " + r.Error
		case r.Verified:
			n := 0
			for _, d := range r.Differences {
				if d.Fails() {
					n++
				}
			}
			status = "verified"
			if n > 0 {
				status = strconv.Itoa(n) + " differences"
			}
		}
		rows = append(rows, []string{r.Mailbox, strconv.Itoa(r.Source), strconv.Itoa(r.Imported), strconv.Itoa(r.AlreadyPresent),
			strconv.Itoa(len(r.Substituted)), strconv.Itoa(len(r.Duplicates)), fmt.Sprintf("%.1f", float64(r.Bytes)/1e6), fmt.Sprintf("%.2f", r.Seconds), status})
	}
	c.table([]string{"MAILBOX", "OLD", "IMPORTED", "PRESENT", "SUBSTITUTED", "DUPLICATES", "MB", "SECONDS", "STATUS"}, rows)
	fmt.Fprintf(c.stdout, "%d messages, %.1f MB in %.2f s: %.0f messages/s, %.1f MB/s\n", msgs, float64(bytes)/1e6, secs, rate(float64(msgs)), rate(float64(bytes)/1e6))
	for _, r := range results {
		for _, u := range r.Substituted {
			fmt.Fprintf(c.stdout, "%s: old UIDL %q breaks RFC 1939's rules; kept as %s\n", r.Mailbox, u, migrate.SubstituteUIDL(u))
		}
		for _, u := range r.Duplicates {
			fmt.Fprintf(c.stdout, "%s: the old mailbox gave UIDL %q twice; only the first message was imported\n", r.Mailbox, u)
		}
		for _, d := range r.Differences {
			fmt.Fprintf(c.stdout, "%s: %s\n", r.Mailbox, d)
		}
	}
}
