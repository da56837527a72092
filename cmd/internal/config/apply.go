package config

import (
	"fmt"
	"reflect"
	"strings"
)

//go:generate go test -run TestReadme(Reload|Settings)Table -update .

// When says when a changed setting takes effect in the running service.
type When string

const (
	// Live: a reload (SIGHUP, POST /api/reload, pop3ctl set, the
	// console) applies the new value to every running part; connections
	// accepted afterwards see it.
	Live When = "live"
	// Restart: read only when the service starts. A reload keeps the
	// running value and reports the key among those needing a restart.
	Restart When = "restart"
)

// applies tags and describes every key of the file, in file order. A key added to
// Config must be added here too (TestEveryKeyTagged fails otherwise), with
// the reload applying it (Live) or the reason it cannot (Restart).
var applies = []struct {
	Key  string
	When When
	Why  string // for Restart: what holds the value
	Desc string // what the key does, in one or two sentences: the README, pop3ctl get and the console show it
}{
	{"mailroot", Restart, "the store is opened at start",
		"Folder holding the domains, mailboxes, queue and Badmail; relative paths resolve against the configuration file's folder."},
	{"node", Restart, "message names and locks carry it from the start",
		"This server's number among the servers sharing the store (0 to 99999); it is part of every message name and lock."},
	{"logging", Live, "",
		"Log detail: 0 none up to 3 the most; 4 adds debugging lines."},
	{"greeting", Live, "",
		"Text of the POP3 greeting after +OK; it never carries a version."},
	{"default_domain", Live, "",
		"Domain added to a bare mailbox name at login; empty: clients must give mailbox@domain."},
	{"lock_lease", Restart, "the store judges every server's locks by the lease it opened with; all servers sharing a store must agree",
		"How long the mailbox lock of a server that stopped renewing it keeps other servers out (3s to 1h, the same on every server)."},

	{"auth.method", Live, "",
		"Where passwords are checked: passwordfile (the store's encrypted file), system (PAM) or directory (LDAP)."},
	{"auth.sparequired", Live, "",
		"Refuse plaintext passwords on a connection that is not encrypted (Secure Password Authentication required)."},
	{"auth.pam_service", Live, "",
		"PAM service name used by auth.method = system."},
	{"auth.fail_delay", Live, "",
		"Wait before answering every failed login."},
	{"auth.cache_ttl", Live, "",
		"How long a successful password check is remembered, so the hash is not recomputed; 0s turns the cache off."},
	{"auth.penalty", Live, "",
		"Extra delay per recent failure from the same address; it decays with time."},
	{"auth.penalty_max", Live, "",
		"Largest per-address penalty."},
	{"auth.ban_after", Live, "",
		"Failures within auth.ban_window that ban an address; 0: never ban."},
	{"auth.ban_window", Live, "",
		"Window in which auth.ban_after failures are counted."},
	{"auth.ban_time", Live, "",
		"How long a ban lasts."},
	{"auth.allow_ntlmv1", Live, "",
		"Accept NTLMv1 and LM responses (older clients); otherwise NTLMv2 only."},
	{"auth.apop", Live, "",
		"Offer APOP (password file only)."},
	{"auth.ntlm", Live, "",
		"Offer AUTH NTLM (password file only)."},
	{"auth.reversible_secrets", Live, "",
		"Keep the sealed password and NT hash APOP, CRAM-MD5 and NTLM need; off: those are not offered and each password record loses its sealed secret at the next password change or successful plaintext login."},
	{"auth.scram", Live, "",
		"Offer SCRAM-SHA-256(-PLUS): auto (once every mailbox with a password has SCRAM keys), on or off."},
	{"auth.hash", Live, "",
		"Hash of new passwords: argon2id, bcrypt or sha512-crypt; all three verify."},
	{"auth.argon2_time", Live, "",
		"argon2id passes per password check."},
	{"auth.argon2_memory", Live, "",
		"argon2id memory per password check (64KB to 1GB)."},
	{"auth.argon2_threads", Live, "",
		"argon2id lanes per password check."},
	{"auth.bcrypt_cost", Live, "",
		"bcrypt work factor (4 to 16)."},
	{"auth.sha512_rounds", Live, "",
		"SHA-512-crypt rounds (1000 to 5000000)."},
	{"auth.hash_workers", Live, "",
		"Password checks run at once by the auth queue; 0: one per core."},
	{"auth.hash_memory", Live, "",
		"Memory budget of the password checks running at once."},
	{"auth.queue", Live, "",
		"Password checks that may wait in the auth queue, per line; beyond it -ERR [SYS/TEMP] at once."},
	{"auth.suspect_workers", Live, "",
		"Password checks of suspect addresses run at once by the auth queue; 0: half of auth.hash_workers, rounded up."},
	{"auth.hash_gc_room", Live, "",
		"With auth.hash_processes off: room given to the garbage collector for the memory password hashes leave, so it does not run after every check; peak memory grows by as much; 0: none."},
	{"auth.hash_processes", Live, "",
		"Run password hashes in worker processes at their own nice values, so a flood of guesses takes only CPU the service does not want and none of its heap; off: in pop3d."},
	{"auth.hash_nice", Live, "",
		"Nice value (0 to 19) of the hash workers of logins from addresses not suspect."},
	{"auth.suspect_nice", Live, "",
		"Nice value (0 to 19) of the hash workers of suspect addresses' logins (auth queue's suspect line)."},
	{"auth.net_failures", Live, "",
		"Recent failed logins from one IPv4 /24 or IPv6 /48 that put all its addresses' password checks in the auth queue's suspect line; 0: only an address's own failures."},
	{"auth.net_trust", Live, "",
		"How long a successful login puts its network's (IPv4 /24, IPv6 /48) password checks ahead of networks not seen logging in; 0s: never."},

	{"pop3.listen", Restart, "listening sockets are bound at start",
		"Plaintext POP3 listeners (host:port), with STLS offered when pop3.stls is set."},
	{"pop3.listen_tls", Restart, "listening sockets are bound at start",
		"Implicit-TLS POP3 listeners (POP3S, RFC 8314)."},
	{"pop3.stls", Live, "",
		"Offer STLS on the plaintext listeners (RFC 2595)."},
	{"pop3.socketmin", Live, "",
		"Connection contexts prepared at start."},
	{"pop3.socketthreshold", Live, "",
		"When fewer spare connection contexts remain, prepare this many more."},
	{"pop3.socketmax", Live, "",
		"POP3 sessions served at once."},
	{"pop3.socketbacklog", Live, "",
		"Connections accepted beyond socketmax and held silent until a slot frees."},
	{"pop3.listen_backlog", Restart, "the kernel's accept queue is set when the sockets are bound",
		"The kernel's accept queue of each POP3 listener; 0: the system's somaxconn."},
	{"pop3.backlog_wait", Live, "",
		"Longest a connection waits in the backlog for a slot before -ERR [SYS/TEMP] and close."},
	{"pop3.threadcount", Live, "",
		"Workers for disk and crypto work."},
	{"pop3.task_queue", Live, "",
		"Tasks that may wait for a busy worker before a command is answered \"server busy\"."},
	{"pop3.login_timeout", Live, "",
		"Longest silence before login."},
	{"pop3.login_deadline", Live, "",
		"Whole time from connect to login, whatever the client sends."},
	{"pop3.shed_at", Live, "",
		"Percent of socketmax from which new clients shed the busiest network's unauthenticated connections."},
	{"pop3.idle_timeout", Live, "",
		"Longest silence after login (RFC 1939: at least ten minutes)."},
	{"pop3.refuse_delay", Live, "",
		"A connection refused for a full pool (socketmax + socketbacklog) is held silent about this long (0.5 to 1.5 times, at random) before -ERR [SYS/TEMP] and close, so a client redialling at once is refused once per delay; 0s: at once."},
	{"pop3.refuse_hold", Live, "",
		"Refused connections held for pop3.refuse_delay at once; beyond, refused at once; 0: what the file descriptor limit leaves after socketmax, socketbacklog, smtp.max_connections and 1000."},
	{"pop3.expire", Live, "",
		"Retention of retrieved messages (EXPIRE, RFC 2449): empty none, never, or days from the first RETR (0: deleted when that session ends)."},
	{"pop3.expire_domains", Live, "",
		"Per-domain retention: \"domain=DAYS\" or \"domain=never\", over pop3.expire."},
	{"pop3.expire_mailboxes", Live, "",
		"Per-mailbox retention: \"mailbox@domain=DAYS|never\", over the domain's (pop3ctl expire)."},
	{"pop3.expire_sweep", Live, "",
		"How often mailboxes not in use are swept for expired messages; 0: only at QUIT."},
	{"pop3.login_delay", Live, "",
		"Least seconds between two logins of a mailbox (LOGIN-DELAY, RFC 2449), across every server; 0: none."},
	{"pop3.login_delay_domains", Live, "",
		"Per-domain login delay: \"domain=SECONDS\", over pop3.login_delay."},

	{"smtp.listen", Restart, "listening sockets are bound at start",
		"SMTP listeners (host:port) that take mail for the served domains."},
	{"smtp.lmtp_listen", Restart, "listening sockets are bound at start",
		"LMTP listeners (host:port) for a mail transfer agent in front."},
	{"smtp.hostname", Live, "",
		"The service's name in the SMTP greeting, Received lines and the APOP, CRAM-MD5 and NTLM challenges; empty: the host name."},
	{"smtp.max_message_size", Live, "",
		"Largest message accepted (SIZE)."},
	{"smtp.max_recipients", Live, "",
		"Recipients per message."},
	{"smtp.relay", Live, "",
		"host:port that carries non-delivery reports to remote senders; empty: none."},
	{"smtp.retry_for", Live, "",
		"How long temporary delivery failures are retried before the message fails."},
	{"smtp.queue_scan", Live, "",
		"How often the delivery service scans the queue."},
	{"smtp.max_line", Live, "",
		"Longest SMTP line in octets, CRLF included (commands and message data)."},
	{"smtp.read_timeout", Live, "",
		"Longest silence from an SMTP client."},
	{"smtp.data_timeout", Live, "",
		"Longest one command or message transfer may take while data keeps coming."},
	{"smtp.write_timeout", Live, "",
		"Longest wait for a reply to be written to an SMTP client."},
	{"smtp.max_connections", Live, "",
		"SMTP and LMTP sessions at once; beyond: 421 4.7.0."},
	{"smtp.max_conns_per_ip", Live, "",
		"SMTP sessions from one address; 0: no limit."},
	{"smtp.max_conns_per_net", Live, "",
		"SMTP sessions from one IPv4 /24 or IPv6 /64."},
	{"smtp.max_conns_per_net48", Live, "",
		"SMTP sessions from one IPv6 /48."},
	{"smtp.transaction_deadline", Live, "",
		"Whole time from connect to the first MAIL FROM; then 421."},

	{"submission.listen", Restart, "listening sockets are bound at start",
		"Submission listeners with STARTTLS (RFC 6409); 587 in production."},
	{"submission.listen_tls", Restart, "listening sockets are bound at start",
		"Submission listeners with implicit TLS (RFC 8314); 465 in production."},
	{"submission.sparequired", Live, "",
		"No AUTH PLAIN or LOGIN on a submission link without TLS (538 5.7.11); CRAM-MD5 stays offered."},
	{"submission.aliases", Live, "",
		"Further sender addresses of a user, each \"user@domain=alias@domain\"."},
	{"submission.max_messages_per_hour", Live, "",
		"Messages one user may submit in any hour; beyond: 450 4.7.1. 0: no limit."},
	{"submission.max_recipients", Live, "",
		"Recipients of one submitted message; beyond: 452 4.5.3."},

	{"outbound.smarthost", Live, "",
		"host:port every outbound message is sent to; empty: MX look-up of each recipient domain."},
	{"outbound.smarthost_user", Live, "",
		"AUTH PLAIN user with the smarthost (sent over TLS only); empty: no AUTH."},
	{"outbound.smarthost_password", Live, "",
		"Password of outbound.smarthost_user."},
	{"outbound.smarthost_tls", Live, "",
		"TLS with the smarthost: \"\" STARTTLS when offered, \"starttls\" required, \"tls\" implicit."},
	{"outbound.resolver", Live, "",
		"host:port of the DNS server for MX look-ups; empty: the system's resolver."},
	{"outbound.mx_port", Live, "",
		"Port of the mail servers MX look-up finds."},
	{"outbound.max_per_destination", Live, "",
		"Conversations with one mail server at once."},
	{"outbound.workers", Restart, "the delivery agent's workers start with the service",
		"Outbound messages sent at once."},
	{"outbound.retry_for", Live, "",
		"How long temporary failures are retried before a report to the sender (5.4.7)."},
	{"outbound.retry_min", Live, "",
		"First wait after a temporary failure; it doubles up to outbound.retry_max."},
	{"outbound.retry_max", Live, "",
		"Longest wait between attempts."},
	{"outbound.connect_timeout", Live, "",
		"One connection attempt to a mail server."},
	{"outbound.timeout", Live, "",
		"One whole conversation with a mail server."},
	{"outbound.dkim_selector", Live, "",
		"Selector of the DKIM signatures made with the keys of pop3ctl dkim add."},

	{"tls.cert", Live, "",
		"Certificate file (PEM); empty: a self-signed pair under the mail root."},
	{"tls.key", Live, "",
		"Private key file (PEM) of tls.cert."},
	{"tls.min_version", Live, "",
		"Oldest TLS version accepted: 1.2 or 1.3 (1.0 and 1.1 for old clients)."},
	{"tls.handshake_timeout", Live, "",
		"Whole time of one TLS handshake (POP3S, STLS, SMTP STARTTLS)."},

	{"admin.listen", Restart, "the admin listener is bound at start",
		"Address of the admin listener: the console, /metrics and the API. Keep it on loopback."},
	{"admin.pprof", Live, "",
		"Serve Go's profiler at /debug/pprof/ on the admin listener."},
	{"admin.console", Live, "",
		"Serve the browser console at /console/."},

	{"limits.max_line", Live, "",
		"Longest POP3 input line in octets, CRLF included."},
	{"limits.max_auth_line", Live, "",
		"Longest SASL continuation line (AUTH), in octets."},
	{"limits.max_bad_commands", Live, "",
		"Unknown or misplaced commands before login, then the connection is closed."},
	{"limits.max_auth_failures", Live, "",
		"Failed logins per connection, then it is closed."},
	{"limits.max_conns_per_ip", Live, "",
		"POP3 connections from one address; 0: no limit."},
	{"limits.max_inbound", Live, "",
		"Octets buffered unread per connection before it is closed."},
	{"limits.backlog_max_input", Live, "",
		"Octets a connection held in the backlog may send."},
	{"limits.outbound_high_mark", Live, "",
		"Pause a RETR/TOP stream above this many queued octets (streams read in chunks by the worker pool: TLS, TOP, or every stream goroutine taken; a RETR sent or copied by its own goroutine queues nothing)."},
	{"limits.outbound_low_mark", Live, "",
		"Resume a paused RETR stream below this many queued octets."},
	{"limits.max_pipelined", Live, "",
		"Commands that may wait behind the one in flight (RFC 2449 PIPELINING)."},
	{"limits.prelogin_per_ip", Live, "",
		"Unauthenticated POP3 connections from one address."},
	{"limits.prelogin_per_net", Live, "",
		"Unauthenticated POP3 connections from one IPv4 /24 or IPv6 /64."},
	{"limits.prelogin_per_net48", Live, "",
		"Unauthenticated POP3 connections from one IPv6 /48."},

	{"quota.domain_default", Live, "",
		"Quota of mailboxes without a quota file of their own; 0: none."},

	{"ldap.url", Live, "",
		"LDAP server of auth.method = directory (ldap:// or ldaps://)."},
	{"ldap.starttls", Live, "",
		"Use StartTLS on an ldap:// connection."},
	{"ldap.bind_dn", Live, "",
		"DN template for a direct bind: %u the mailbox, %d the domain, %s mailbox@domain."},
	{"ldap.search_base", Live, "",
		"Where users are searched for; when set, logins search instead of binding directly."},
	{"ldap.search_filter", Live, "",
		"Filter that finds a user, e.g. (mail=%s) or (userPrincipalName=%s)."},
	{"ldap.service_dn", Live, "",
		"DN of the optional account that searches."},
	{"ldap.service_password", Live, "",
		"Password of the service account (shown masked)."},
	{"ldap.timeout", Live, "",
		"Timeout of one directory operation."},
	{"ldap.pool_size", Live, "",
		"Directory connections kept open."},
	{"ldap.ca_cert", Live, "",
		"CA certificate file (PEM) the directory's certificate is checked against; empty: the system's roots."},
	{"ldap.insecure_skip_verify", Live, "",
		"Do not check the directory's certificate (tests only)."},

	{"oauth.issuer", Live, "",
		"The iss every OAuth bearer token must carry (OAUTHBEARER, XOAUTH2); empty: OAuth off."},
	{"oauth.audience", Live, "",
		"A value the token's aud must hold."},
	{"oauth.jwks_file", Live, "",
		"The issuer's keys, a local JWK Set."},
	{"oauth.jwks_url", Live, "",
		"Or the URL the JWK Set is fetched from (https; http only on loopback)."},
	{"oauth.claim", Live, "",
		"The claim that holds mailbox@domain."},
	{"oauth.introspection_url", Live, "",
		"Or the authorization server's token introspection endpoint (RFC 7662; https, http only on loopback), asked about each token."},
	{"oauth.client_id", Live, "",
		"The client id pop3d authenticates to the introspection endpoint with (HTTP Basic)."},
	{"oauth.client_secret", Live, "",
		"Its client secret."},
	{"oauth.max_introspections", Live, "",
		"Introspection requests running at once; a login beyond them gets a temporary failure."},
	{"oauth.introspection_cache", Live, "",
		"How long an introspection answer that accepted a token is remembered (never past the token's exp), so the same token costs no request; 0s asks every time. A reload empties it."},
	{"oauth.introspection_cache_entries", Live, "",
		"Answers the introspection cache keeps at most."},
}

// Applies returns when a change of key takes effect; key is a dotted key
// path or a Winpop alias ("port" is pop3.listen). ok is false for an
// unknown key.
func Applies(key string) (w When, ok bool) {
	k, err := canonicalKey(key)
	if err != nil {
		return "", false
	}
	if k == "port" {
		k = "pop3.listen"
	}
	for _, a := range applies {
		if a.Key == k {
			return a.When, true
		}
	}
	return "", false
}

// Describe returns what key does and, for a restart key, why a reload
// cannot apply it; key is a dotted key path or a Winpop alias. ok is false
// for an unknown key.
func Describe(key string) (desc, why string, ok bool) {
	k, err := canonicalKey(key)
	if err != nil {
		return "", "", false
	}
	if k == "port" {
		k = "pop3.listen"
	}
	for _, a := range applies {
		if a.Key == k {
			return a.Desc, a.Why, true
		}
	}
	return "", "", false
}

// RestartChanges returns the keys tagged Restart whose values differ
// between old and new, in file order: what a reload from old to new
// cannot apply.
func RestartChanges(old, new *Config) []string {
	if old == nil || new == nil {
		return nil
	}
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(new).Elem()
	var out []string
	for _, l := range leaves {
		if w, _ := Applies(l.key); w != Restart {
			continue
		}
		if !sameValue(ov.FieldByIndex(l.index), nv.FieldByIndex(l.index)) {
			out = append(out, l.key)
		}
	}
	return out
}

// sameValue compares two settings; an empty list and a missing one are
// the same.
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// RestartNotice is the one sentence pop3d's log, the admin API, pop3ctl
// and the console use to report restart-only keys a reload found changed.
// It is "" when keys is empty.
func RestartNotice(keys []string) string {
	switch len(keys) {
	case 0:
		return ""
	case 1:
		return "restart needed: the change to " + keys[0] + " takes effect only when the service restarts; until then it keeps the value it started with"
	}
	return "restart needed: the changes to " + strings.Join(keys, ", ") + " take effect only when the service restarts; until then it keeps the values it started with"
}

// ReloadTable renders the live/restart tags as the README's Markdown
// table: one row per table of the file.
func ReloadTable() string {
	type row struct {
		table         string
		live, restart []string
	}
	var rows []*row
	for _, a := range applies {
		table, name, ok := strings.Cut(a.Key, ".")
		if !ok {
			table, name = "(top level)", a.Key
		} else {
			table = "[" + table + "]"
		}
		if len(rows) == 0 || rows[len(rows)-1].table != table {
			rows = append(rows, &row{table: table})
		}
		r := rows[len(rows)-1]
		if a.When == Live {
			r.live = append(r.live, "`"+name+"`")
		} else {
			r.restart = append(r.restart, "`"+name+"` ("+a.Why+")")
		}
	}
	var b strings.Builder
	b.WriteString("| table | applied by a reload | need a restart |\n| --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.table, strings.Join(r.live, " "), strings.Join(r.restart, "; "))
	}
	return b.String()
}

// NoFileRefusal is why a setting is not changed while the running service
// uses its built-in defaults: it was started without a configuration file,
// so it would never read a file written now. pop3ctl set and the console
// both refuse with it.
const NoFileRefusal = "the running service uses its built-in defaults (it was started without a configuration file) and would not read a file written now; start pop3d with -config FILE (or with ./pop3d.toml in its folder), then change the setting"

// SettingsTable renders every key with its tag and description as the
// README's Markdown settings reference, one row per key in file order.
func SettingsTable() string {
	var b strings.Builder
	b.WriteString("| key | applies | what it does |\n| --- | --- | --- |\n")
	for _, a := range applies {
		when := string(a.When)
		if a.When == Restart {
			when += " (" + a.Why + ")"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", a.Key, when, strings.ReplaceAll(a.Desc, "|", "\\|"))
	}
	return b.String()
}

// KeyInfo is one key of the live/restart table.
type KeyInfo struct {
	Key  string
	When When
	Why  string // for restart keys: why a reload cannot apply it
	Desc string // what the key does
}

// KeyInfos is the live/restart table in file order (the man page
// pop3d.toml(5) is made from it, like the README's reload table).
func KeyInfos() []KeyInfo {
	out := make([]KeyInfo, len(applies))
	for i, a := range applies {
		out[i] = KeyInfo{Key: a.Key, When: a.When, Why: a.Why, Desc: a.Desc}
	}
	return out
}
