// Command pop3ctl is the administrator's tool of the POP3 service: it
// manages domains, mailboxes, passwords, quotas and administrator's locks in
// the mail store, delivers a message as a local delivery agent, shows the
// store's usage and reads and changes the service's settings.
//
//	pop3ctl [-config FILE] [-json] VERB [ARGS] [FLAGS]
//
// Flags may come before or after the verb. The configuration file is found
// as pop3d finds it: -config, else $POP3D_CONFIG, else ./pop3d.toml, else
// the embedded defaults. Every verb reaches the mail only through the mail
// store's API, the same path that the service uses.
//
// Exit status: 0 success; 1 the request was refused (one line on stderr
// says which rule was broken); 2 usage error. deliver follows sysexits.h
// instead, for MTAs: 64 usage, 67 no such mailbox or domain, 69 the LMTP
// server (-lmtp) refused the message for good for another reason, 73
// refused for good (over quota, too large), 74 the message could not be
// read, 75 the store or the LMTP server failed for now (try again).
// With -json, output and errors ({"error": "..."}) are JSON on stdout,
// with the same exit status.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/pop3svc/pop3svc/cmd/internal/audit"
	"github.com/pop3svc/pop3svc/cmd/internal/version"
)

// Exit statuses.
const (
	exitOK      = 0
	exitRefused = 1
	exitUsage   = 2
)

// MaxPasswordLine is the longest line -password-stdin reads.
const MaxPasswordLine = 4096

const usageText = `usage: pop3ctl [-config FILE] [-json] VERB [ARGS]

Domains and mailboxes:
  add DOMAIN                           create a domain
  add MAILBOX@DOMAIN [-password P | -password-stdin]
                                       create a mailbox (no password: for system or directory authentication)
  delete DOMAIN [-force]               delete a domain (-force: with all its mailboxes and mail)
  delete MAILBOX@DOMAIN                delete a mailbox and all its mail
  rename MAILBOX@DOMAIN NEWNAME        rename a mailbox within its domain
  list [DOMAIN]                        list domains, or the mailboxes of DOMAIN
  lock DOMAIN|MAILBOX@DOMAIN           lock out POP3 sessions (delivery goes on)
  unlock DOMAIN|MAILBOX@DOMAIN         lift the administrator's lock
  stat [DOMAIN]                        messages and bytes per mailbox, with domain totals
  changepwd MAILBOX@DOMAIN -password P | -password-stdin | -hash HASH
                                       set a mailbox's password-file password, or a bcrypt or
                                       SHA-512-crypt hash brought from another system
  quota MAILBOX@DOMAIN [SIZE|none]     show or set a mailbox quota (SIZE like 50MB)
  deliver MAILBOX@DOMAIN [FILE] [-return-path ADDR] [-delivered-to ADDR] [-lmtp HOST:PORT]
                                       deliver one message from FILE or stdin (a leading mbox
                                       "From " line is removed); prints its UID; exit status
                                       follows sysexits (see "Exit status" below); -lmtp hands
                                       it to pop3d's LMTP listener instead of writing the store,
                                       so any local user may run it (Postfix's mailbox_command)

  expire DOMAIN|MAILBOX@DOMAIN [DAYS|never|default]
                                       show or set the retention of retrieved messages (EXPIRE)
                                       of a domain or one mailbox (pop3.expire_domains/_mailboxes)

Moving in from another server (every message keeps its UIDL; run again: nothing twice):
  import maildir DIR MAILBOX@DOMAIN [-uidl-format F] [-xuidl]
                                       a Dovecot (dovecot-uidlist) or Courier (courierpop3dsizelist)
                                       Maildir; F is Dovecot's pop3_uidl_format (default %08Xu%08Xv),
                                       -xuidl: its pop3_reuse_xuidl
  import pop3 -from HOST:PORT [-tls|-stls] [-cafile PEM] -user U -password-stdin MAILBOX@DOMAIN
                                       a live POP3 server; deletes nothing there
                                       (-insecure: accept its certificate unchecked)
  import mbox FILE MAILBOX@DOMAIN      an mbox file (X-UIDL where present)
  import store DIR                     a Windows POP3 Service mail root, every domain and mailbox
  import maildir|mbox -users FILE DOMAIN
                                       a whole domain: FILE has lines "MAILBOX DIR-or-FILE"
  import pop3 -from HOST:PORT -users FILE DOMAIN
                                       a whole domain: FILE (mode 600) has lines "MAILBOX USER PASSWORD"
  import ... -verify                   then compare the old and new UIDL lists and sizes

Queues (inbound: mail for local mailboxes; outbound: submitted mail for other domains):
  queue list [inbound|outbound]        list the entries, with their recipients' state
  queue show ID                        one entry: envelope and each recipient's state
  queue retry ID                       make a deferred entry due now
  queue delete ID                      remove an entry without delivering it or reporting

DKIM (RFC 6376):
  dkim add DOMAIN                      make DOMAIN's signing key; prints the DNS TXT record to publish
                                       (selector outbound.dkim_selector); outbound mail from DOMAIN is signed

Backup:
  backup FILE|-                        write the whole mail store (key, domains, mailboxes, passwords,
                                       quotas, locks, messages with their UIDs) while pop3d runs; each
                                       mailbox as it was at one instant; mail delivered meanwhile is in
                                       the store and the next backup
  restore FILE|-                       merge a backup into the store: missing domains, mailboxes and
                                       messages (by UID) come back; nothing is deleted or replaced

Service:
  version                              print the version (also: -version)
  help                                 this text (also: -help, -h)

Settings:
  get [KEY]                            show one setting, or all of them
  set KEY VALUE [-force]               change a setting in the file and tell the running service;
                                       switching authentication is refused while existing mailboxes
                                       could no longer log in, unless -force

Flags:
  -config FILE      configuration file (default: $POP3D_CONFIG, else ./pop3d.toml, else built-in)
  -json             machine-readable output on stdout
  -password P       the password (visible to other local users in the process list)
  -password-stdin   read the password from the first line of stdin
  -force            delete a domain that still has mailboxes; switch authentication regardless
  -hash HASH        changepwd: a bcrypt ($2a$/$2b$/$2y$) or SHA-512-crypt ($6$) hash
  -version          print the version and exit
  -help, -h         this text (also: pop3ctl help)
`

// usageError is a wrong command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// cli is one run of the tool.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	configPath    string
	json          bool
	password      string
	passwordSet   bool
	passwordStdin bool
	hash          string // changepwd -hash: a bcrypt or SHA-512-crypt hash brought from elsewhere
	hashSet       bool
	force         bool
	imp           importFlags // import's flags
	dlv           deliverFlags

	verb  string
	args  []string
	flags *flag.FlagSet // the flags parse knows, for pop3ctl help's test

	auditLog *slog.Logger // nil until the first change
}

func main() {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(c.run(os.Args[1:]))
}

// run parses the command line, runs the verb and returns the exit status.
func (c *cli) run(argv []string) int {
	if err := c.parse(argv); err != nil {
		return c.fail(err)
	}
	if err := c.dispatch(); err != nil {
		return c.fail(err)
	}
	return exitOK
}

// parse reads flags wherever they appear and the positional arguments.
func (c *cli) parse(argv []string) error {
	fs := flag.NewFlagSet("pop3ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.configPath, "config", "", "")
	fs.BoolVar(&c.json, "json", false, "")
	fs.Func("password", "", func(s string) error { c.password, c.passwordSet = s, true; return nil })
	fs.BoolVar(&c.passwordStdin, "password-stdin", false, "")
	fs.Func("hash", "", func(s string) error { c.hash, c.hashSet = s, true; return nil })
	fs.BoolVar(&c.force, "force", false, "")
	fs.StringVar(&c.imp.from, "from", "", "")
	fs.BoolVar(&c.imp.tls, "tls", false, "")
	fs.BoolVar(&c.imp.stls, "stls", false, "")
	fs.StringVar(&c.imp.caFile, "cafile", "", "")
	fs.BoolVar(&c.imp.insecure, "insecure", false, "")
	fs.StringVar(&c.imp.user, "user", "", "")
	fs.StringVar(&c.imp.users, "users", "", "")
	fs.BoolVar(&c.imp.verify, "verify", false, "")
	fs.StringVar(&c.imp.uidlFormat, "uidl-format", "", "")
	fs.BoolVar(&c.imp.xuidl, "xuidl", false, "")
	fs.StringVar(&c.dlv.returnPath, "return-path", "", "")
	fs.StringVar(&c.dlv.deliveredTo, "delivered-to", "", "")
	fs.StringVar(&c.dlv.lmtp, "lmtp", "", "")
	help := fs.Bool("help", false, "")
	fs.BoolVar(help, "h", false, "")
	showVersion := fs.Bool("version", false, "")
	c.flags = fs
	var pos []string
	rest := argv
	for {
		if err := fs.Parse(rest); err != nil {
			// Find -json even when parsing failed, so the error comes out as asked.
			for _, a := range argv {
				if a == "-json" || a == "--json" {
					c.json = true
				}
			}
			return usagef("%s", err.Error())
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	if *showVersion {
		c.verb = "version"
		return nil
	}
	if *help {
		c.verb = "help"
		return nil
	}
	if len(pos) == 0 {
		return usagef("no verb given")
	}
	c.verb, c.args = strings.ToLower(pos[0]), pos[1:]
	return nil
}

// verbs maps each verb to its handler and the flags it accepts.
var verbs = map[string]struct {
	run   func(*cli) error
	flags string // accepted verb flags: p (password), f (force)
}{
	"help":      {(*cli).help, ""},
	"version":   {(*cli).version, ""},
	"add":       {(*cli).add, "p"},
	"delete":    {(*cli).delete, "f"},
	"rename":    {(*cli).rename, ""},
	"list":      {(*cli).list, ""},
	"lock":      {func(c *cli) error { return c.lock(true) }, ""},
	"unlock":    {func(c *cli) error { return c.lock(false) }, ""},
	"stat":      {(*cli).stat, ""},
	"changepwd": {(*cli).changepwd, "p"},
	"quota":     {(*cli).quota, ""},
	"deliver":   {(*cli).deliver, ""},
	"import":    {(*cli).importMail, "p"},
	"backup":    {(*cli).backup, ""},
	"restore":   {(*cli).restore, ""},
	"get":       {(*cli).get, ""},
	"set":       {(*cli).set, "f"},
	"queue":     {(*cli).queueVerb, ""},
	"dkim":      {(*cli).dkim, ""},
	"expire":    {(*cli).expire, ""},
}

// verbNames are the verbs, sorted (pop3ctl -json help).
var verbNames []string

func init() {
	for v := range verbs {
		verbNames = append(verbNames, v)
	}
	sort.Strings(verbNames)
}

func (c *cli) dispatch() error {
	v, ok := verbs[c.verb]
	if !ok {
		return usagef("unknown verb %q", c.verb)
	}
	if (c.passwordSet || c.passwordStdin) && !strings.Contains(v.flags, "p") {
		return usagef("%s takes no password", c.verb)
	}
	if c.passwordSet && c.passwordStdin {
		return usagef("give -password or -password-stdin, not both")
	}
	if c.hashSet && c.verb != "changepwd" {
		return usagef("-hash is only for changepwd")
	}
	if c.imp != (importFlags{}) && c.verb != "import" {
		return usagef("-from, -tls, -stls, -cafile, -insecure, -user, -users, -verify, -uidl-format and -xuidl are only for import")
	}
	if c.dlv != (deliverFlags{}) && c.verb != "deliver" {
		return usagef("-return-path, -delivered-to and -lmtp are only for deliver")
	}
	if c.verb == "import" && c.passwordSet {
		return usagef("import pop3 takes the old password with -password-stdin only")
	}
	if c.force && !strings.Contains(v.flags, "f") {
		return usagef("-force is only for delete and set")
	}
	return v.run(c)
}

// wantArgs checks the number of positional arguments.
func (c *cli) wantArgs(lo, hi int, form string) error {
	if len(c.args) < lo || len(c.args) > hi {
		return usagef("usage: pop3ctl %s %s", c.verb, form)
	}
	return nil
}

// fail reports err and returns its exit status.
func (c *cli) fail(err error) int {
	code := exitRefused
	var ue *usageError
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if errors.As(err, &ue) {
		code = exitUsage
	}
	msg := oneLine(describe(err))
	if c.json {
		c.emitJSON(map[string]any{"error": msg})
		return code
	}
	fmt.Fprintf(c.stderr, "pop3ctl: %s\n", msg)
	if code == exitUsage && !strings.HasPrefix(msg, "usage:") {
		fmt.Fprintln(c.stderr, "usage: pop3ctl [-config FILE] [-json] VERB [ARGS] (pop3ctl help lists the verbs)")
	}
	return code
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}

func (c *cli) help() error {
	if len(c.args) > 0 {
		return usagef("help takes no arguments")
	}
	if c.json {
		c.emitJSON(map[string]any{"verbs": verbNames, "usage": usageText})
		return nil
	}
	fmt.Fprint(c.stdout, usageText)
	return nil
}

func (c *cli) version() error {
	if c.json {
		c.emitJSON(map[string]any{"version": version.String()})
		return nil
	}
	fmt.Fprintln(c.stdout, version.Line("pop3ctl"))
	return nil
}

// audit records one administrative change (package audit): to syslog,
// else standard error.
func (c *cli) audit(action, object, old, new string) {
	if c.auditLog == nil {
		c.auditLog = audit.Local(c.stderr)
	}
	audit.Record(c.auditLog, audit.Entry{Via: "pop3ctl", Who: audit.LocalWho(), From: audit.LocalFrom(),
		Action: action, Object: object, Old: old, New: new})
}

// emitJSON writes v as one JSON document on stdout.
func (c *cli) emitJSON(v any) {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// say prints a human message, or v as JSON.
func (c *cli) say(v any, format string, args ...any) {
	if c.json {
		c.emitJSON(v)
		return
	}
	fmt.Fprintf(c.stdout, format+"\n", args...)
}

// warn prints a warning on stderr (also in JSON mode, where stdout stays
// machine-readable).
func (c *cli) warn(format string, args ...any) {
	fmt.Fprintf(c.stderr, "pop3ctl: warning: "+format+"\n", args...)
}

// table writes rows aligned in columns.
func (c *cli) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// readPassword returns the password from -password or the first line of
// stdin (-password-stdin); ok is false when neither was given.
func (c *cli) readPassword() (pw string, ok bool, err error) {
	if c.passwordSet {
		if c.password == "" {
			return "", false, errors.New("the password is empty")
		}
		return c.password, true, nil
	}
	if !c.passwordStdin {
		return "", false, nil
	}
	r := bufio.NewReaderSize(io.LimitReader(c.stdin, MaxPasswordLine+1), MaxPasswordLine+1)
	line, err := r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("cannot read the password from stdin: %w", err)
	}
	if len(line) > MaxPasswordLine || (len(line) == MaxPasswordLine && !strings.HasSuffix(line, "\n")) {
		return "", false, fmt.Errorf("the password line on stdin is longer than %d octets", MaxPasswordLine)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", false, errors.New("the password read from stdin is empty")
	}
	return line, true, nil
}
