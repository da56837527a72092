package config

import (
	"fmt"
	"reflect"
	"strings"
)

//go:generate go test -run TestReadmeReloadTable -update .

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

// applies tags every key of the file, in file order. A key added to
// Config must be added here too (TestEveryKeyTagged fails otherwise), with
// the reload applying it (Live) or the reason it cannot (Restart).
var applies = []struct {
	Key  string
	When When
	Why  string // for Restart: what holds the value
}{
	{"mailroot", Restart, "the store is opened at start"},
	{"node", Restart, "message names and locks carry it from the start"},
	{"logging", Live, ""},
	{"greeting", Live, ""},
	{"default_domain", Live, ""},
	{"lock_lease", Restart, "the store judges every server's locks by the lease it opened with; all servers sharing a store must agree"},

	{"auth.method", Live, ""},
	{"auth.sparequired", Live, ""},
	{"auth.pam_service", Live, ""},
	{"auth.fail_delay", Live, ""},
	{"auth.cache_ttl", Live, ""},
	{"auth.penalty", Live, ""},
	{"auth.penalty_max", Live, ""},
	{"auth.ban_after", Live, ""},
	{"auth.ban_window", Live, ""},
	{"auth.ban_time", Live, ""},
	{"auth.allow_ntlmv1", Live, ""},
	{"auth.apop", Live, ""},
	{"auth.ntlm", Live, ""},
	{"auth.hash", Live, ""},
	{"auth.argon2_time", Live, ""},
	{"auth.argon2_memory", Live, ""},
	{"auth.argon2_threads", Live, ""},
	{"auth.bcrypt_cost", Live, ""},
	{"auth.sha512_rounds", Live, ""},
	{"auth.hash_workers", Live, ""},
	{"auth.hash_memory", Live, ""},
	{"auth.queue", Live, ""},

	{"pop3.listen", Restart, "listening sockets are bound at start"},
	{"pop3.listen_tls", Restart, "listening sockets are bound at start"},
	{"pop3.stls", Live, ""},
	{"pop3.socketmin", Live, ""},
	{"pop3.socketthreshold", Live, ""},
	{"pop3.socketmax", Live, ""},
	{"pop3.socketbacklog", Live, ""},
	{"pop3.listen_backlog", Restart, "the kernel's accept queue is set when the sockets are bound"},
	{"pop3.backlog_wait", Live, ""},
	{"pop3.threadcount", Live, ""},
	{"pop3.task_queue", Live, ""},
	{"pop3.login_timeout", Live, ""},
	{"pop3.login_deadline", Live, ""},
	{"pop3.shed_at", Live, ""},
	{"pop3.idle_timeout", Live, ""},
	{"pop3.expire_days", Live, ""},
	{"pop3.login_delay", Live, ""},

	{"smtp.listen", Restart, "listening sockets are bound at start"},
	{"smtp.lmtp_listen", Restart, "listening sockets are bound at start"},
	{"smtp.hostname", Live, ""},
	{"smtp.max_message_size", Live, ""},
	{"smtp.max_recipients", Live, ""},
	{"smtp.relay", Live, ""},
	{"smtp.retry_for", Live, ""},
	{"smtp.queue_scan", Live, ""},
	{"smtp.max_line", Live, ""},
	{"smtp.read_timeout", Live, ""},
	{"smtp.data_timeout", Live, ""},
	{"smtp.write_timeout", Live, ""},
	{"smtp.max_connections", Live, ""},
	{"smtp.max_conns_per_ip", Live, ""},
	{"smtp.max_conns_per_net", Live, ""},
	{"smtp.max_conns_per_net48", Live, ""},
	{"smtp.transaction_deadline", Live, ""},

	{"tls.cert", Live, ""},
	{"tls.key", Live, ""},
	{"tls.min_version", Live, ""},
	{"tls.handshake_timeout", Live, ""},

	{"admin.listen", Restart, "the admin listener is bound at start"},
	{"admin.pprof", Live, ""},
	{"admin.console", Live, ""},

	{"limits.max_line", Live, ""},
	{"limits.max_auth_line", Live, ""},
	{"limits.max_bad_commands", Live, ""},
	{"limits.max_auth_failures", Live, ""},
	{"limits.max_conns_per_ip", Live, ""},
	{"limits.max_inbound", Live, ""},
	{"limits.backlog_max_input", Live, ""},
	{"limits.outbound_high_mark", Live, ""},
	{"limits.outbound_low_mark", Live, ""},
	{"limits.max_pipelined", Live, ""},
	{"limits.prelogin_per_ip", Live, ""},
	{"limits.prelogin_per_net", Live, ""},
	{"limits.prelogin_per_net48", Live, ""},

	{"quota.domain_default", Live, ""},

	{"ldap.url", Live, ""},
	{"ldap.starttls", Live, ""},
	{"ldap.bind_dn", Live, ""},
	{"ldap.search_base", Live, ""},
	{"ldap.search_filter", Live, ""},
	{"ldap.service_dn", Live, ""},
	{"ldap.service_password", Live, ""},
	{"ldap.timeout", Live, ""},
	{"ldap.pool_size", Live, ""},
	{"ldap.ca_cert", Live, ""},
	{"ldap.insecure_skip_verify", Live, ""},
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
