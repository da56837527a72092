package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/session/pop3"
	"github.com/pop3svc/pop3svc/store"
)

// Bounds of the settings that Validate enforces.
const (
	MaxNode = 99999 // node numbers are five digits of a message UID
	// MinLockLease keeps the renewal period (a third of the lease) at or
	// above the engine's one-second sweep; MaxLockLease keeps a dead
	// machine's users out for at most an hour.
	MinLockLease    = 3 * time.Second
	MaxLockLease    = time.Hour
	MaxLogging      = 4       // Winpop's 0..3, plus 4 for debug
	MaxGreetingLen  = 200     // the greeting follows "+OK " on one line (RFC 1939 section 4)
	MaxThreadCount  = 100000  //
	MaxSocketMax    = 1000000 //
	MinMaxLine      = 255     // RFC 2449 section 4: commands may be up to 255 octets including CRLF
	MaxMaxLine      = 1 << 20 //
	MinSMTPLine     = 1000    // RFC 5321 section 4.5.3.1.6: a text line is up to 1000 octets including CRLF
	MinMaxRecipient = 1       //
)

// HashAlgorithms are the accepted values of auth.hash.
var HashAlgorithms = []string{"argon2id", "bcrypt", "sha512-crypt"}

// AuthMethods are the accepted values of auth.method, in the order that
// pop3ctl numbers them (1, 2, 3).
var AuthMethods = []string{"passwordfile", "system", "directory"}

// TLSVersions are the accepted values of tls.min_version.
var TLSVersions = []string{"1.0", "1.1", "1.2", "1.3"}

// Validate checks every setting and returns an *Errors listing each broken
// rule with its key path, or nil.
//
// pop3.idle_timeout may be shorter than the 10 minutes RFC 1939 section 3
// asks for (tests and busy servers use shorter ones); it must be positive.
func (c *Config) Validate() error {
	e := &Errors{}
	if c.MailRoot == "" {
		e.add("mailroot", "must not be empty")
	}
	if c.Node < 0 || c.Node > MaxNode {
		e.add("node", "must be between 0 and %d (is %d)", MaxNode, c.Node)
	}
	if c.LockLease.D() < MinLockLease || c.LockLease.D() > MaxLockLease {
		e.add("lock_lease", "must be between %v and %v (is %v)", MinLockLease, MaxLockLease, c.LockLease.D())
	}
	if c.Logging < 0 || c.Logging > MaxLogging {
		e.add("logging", "must be between 0 and %d (is %d)", MaxLogging, c.Logging)
	}
	if msg := checkGreeting(c.Greeting); msg != "" {
		e.add("greeting", "%s", msg)
	}
	if c.DefaultDomain != "" {
		if err := store.ValidateDomain(c.DefaultDomain); err != nil {
			e.add("default_domain", "%s", nameRule(err))
		}
	}

	// [auth]
	if !contains(AuthMethods, c.Auth.Method) {
		e.add("auth.method", "must be one of %s (is %q)", strings.Join(AuthMethods, ", "), c.Auth.Method)
	}
	if c.Auth.Method == "system" && c.Auth.PAMService == "" {
		e.add("auth.pam_service", "must be set when auth.method is \"system\"")
	}
	if c.Auth.PenaltyMax < c.Auth.Penalty {
		e.add("auth.penalty_max", "must be at least auth.penalty (%s)", c.Auth.Penalty.D())
	}
	if !contains(HashAlgorithms, c.Auth.Hash) {
		e.add("auth.hash", "must be one of %s (is %q)", strings.Join(HashAlgorithms, ", "), c.Auth.Hash)
	}
	if c.Auth.Argon2Time < 1 || c.Auth.Argon2Time > 64 {
		e.add("auth.argon2_time", "must be between 1 and 64 (is %d)", c.Auth.Argon2Time)
	}
	if c.Auth.Argon2Memory < 64<<10 || c.Auth.Argon2Memory > 1<<30 {
		e.add("auth.argon2_memory", "must be between 64KB and 1GB (is %s)", c.Auth.Argon2Memory)
	} else if c.Auth.Argon2Memory%(1<<10) != 0 {
		e.add("auth.argon2_memory", "must be a whole number of KB (is %d octets)", int64(c.Auth.Argon2Memory))
	} else if c.Auth.Argon2Threads >= 1 && int64(c.Auth.Argon2Memory)>>10 < 8*int64(c.Auth.Argon2Threads) {
		e.add("auth.argon2_memory", "must be at least 8KB per lane of auth.argon2_threads (is %s)", c.Auth.Argon2Memory)
	}
	if c.Auth.Argon2Threads < 1 || c.Auth.Argon2Threads > 255 {
		e.add("auth.argon2_threads", "must be between 1 and 255 (is %d)", c.Auth.Argon2Threads)
	}
	if c.Auth.BcryptCost < 4 || c.Auth.BcryptCost > 16 {
		e.add("auth.bcrypt_cost", "must be between 4 and 16 (is %d)", c.Auth.BcryptCost)
	}
	if c.Auth.SHA512Rounds < 1000 || c.Auth.SHA512Rounds > 5000000 {
		e.add("auth.sha512_rounds", "must be between 1000 and 5000000 (is %d)", c.Auth.SHA512Rounds)
	}
	if c.Auth.HashWorkers < 0 || c.Auth.HashWorkers > MaxThreadCount {
		e.add("auth.hash_workers", "must be between 0 (one per core) and %d (is %d)", MaxThreadCount, c.Auth.HashWorkers)
	}
	if c.Auth.Queue < 0 || c.Auth.Queue > MaxSocketMax {
		e.add("auth.queue", "must be between 0 and %d (is %d)", MaxSocketMax, c.Auth.Queue)
	}
	if c.Auth.NetFailures < 0 {
		e.add("auth.net_failures", "must not be negative (is %d)", c.Auth.NetFailures)
	}
	if c.Auth.SuspectWorkers < 0 || c.Auth.SuspectWorkers > MaxThreadCount {
		e.add("auth.suspect_workers", "must be between 0 (half of auth.hash_workers) and %d (is %d)", MaxThreadCount, c.Auth.SuspectWorkers)
	}
	if c.Auth.HashNice < 0 || c.Auth.HashNice > 19 {
		e.add("auth.hash_nice", "must be a nice value between 0 and 19 (is %d)", c.Auth.HashNice)
	}
	if c.Auth.SuspectNice < 0 || c.Auth.SuspectNice > 19 {
		e.add("auth.suspect_nice", "must be a nice value between 0 and 19 (is %d)", c.Auth.SuspectNice)
	}
	if c.Auth.HashGCRoom < 0 || c.Auth.HashGCRoom > 16<<30 {
		e.add("auth.hash_gc_room", "must be between 0 and 16GB (is %d)", int64(c.Auth.HashGCRoom))
	}
	if c.Auth.NetTrust < 0 {
		e.add("auth.net_trust", "must not be negative (is %s)", c.Auth.NetTrust.D())
	}
	if c.Auth.BanAfter < 0 {
		e.add("auth.ban_after", "must not be negative (is %d)", c.Auth.BanAfter)
	}
	if c.Auth.BanAfter > 0 {
		if c.Auth.BanWindow <= 0 {
			e.add("auth.ban_window", "must be positive when auth.ban_after is set")
		}
		if c.Auth.BanTime <= 0 {
			e.add("auth.ban_time", "must be positive when auth.ban_after is set")
		}
	}

	// [pop3]
	checkListeners(e, "pop3.listen", c.POP3.Listen)
	checkListeners(e, "pop3.listen_tls", c.POP3.ListenTLS)
	p := c.POP3
	if p.SocketMin < 0 {
		e.add("pop3.socketmin", "must not be negative (is %d)", p.SocketMin)
	}
	if p.SocketThreshold < 0 {
		e.add("pop3.socketthreshold", "must not be negative (is %d)", p.SocketThreshold)
	}
	if p.SocketMax < 1 || p.SocketMax > MaxSocketMax {
		e.add("pop3.socketmax", "must be between 1 and %d (is %d)", MaxSocketMax, p.SocketMax)
	}
	if p.SocketBacklog < 0 {
		e.add("pop3.socketbacklog", "must not be negative (is %d)", p.SocketBacklog)
	}
	if p.SocketMin > p.SocketMax && p.SocketMax >= 1 {
		e.add("pop3.socketmin", "must not exceed pop3.socketmax (%d > %d)", p.SocketMin, p.SocketMax)
	}
	if p.ListenBacklog < 0 {
		e.add("pop3.listen_backlog", "must not be negative (is %d)", p.ListenBacklog)
	}
	if p.TaskQueue < 0 || p.TaskQueue > 1000000 {
		e.add("pop3.task_queue", "must be between 0 and 1000000 (is %d)", p.TaskQueue)
	}
	if p.ThreadCount < 1 || p.ThreadCount > MaxThreadCount {
		e.add("pop3.threadcount", "must be between 1 and %d (is %d)", MaxThreadCount, p.ThreadCount)
	}
	if p.LoginTimeout <= 0 {
		e.add("pop3.login_timeout", "must be positive")
	}
	if p.LoginDeadline <= 0 {
		e.add("pop3.login_deadline", "must be positive")
	}
	if p.ShedAt < 1 || p.ShedAt > 100 {
		e.add("pop3.shed_at", "must be a percentage of pop3.socketmax between 1 and 100 (is %d)", p.ShedAt)
	}
	if p.IdleTimeout <= 0 {
		e.add("pop3.idle_timeout", "must be positive (RFC 1939 asks for at least 10m)")
	}
	if p.RefuseDelay < 0 || p.RefuseDelay.D() > time.Minute {
		e.add("pop3.refuse_delay", "must be between 0s (refuse at once) and 1m (is %v)", p.RefuseDelay.D())
	}
	if p.RefuseHold < 0 || p.RefuseHold > MaxSocketMax {
		e.add("pop3.refuse_hold", "must be between 0 (what the file descriptor limit leaves) and %d (is %d)", MaxSocketMax, p.RefuseHold)
	}
	if p.Expire != "" {
		if _, err := pop3.ParseRetention(p.Expire); err != nil {
			e.add("pop3.expire", "must be empty, never or a number of days: %v", err)
		}
	}
	if _, err := pop3.ParseRetentions(p.ExpireDomains, false); err != nil {
		e.add("pop3.expire_domains", "%v", err)
	}
	if _, err := pop3.ParseRetentions(p.ExpireMailboxes, true); err != nil {
		e.add("pop3.expire_mailboxes", "%v", err)
	}
	if p.ExpireSweep < 0 || (p.ExpireSweep > 0 && p.ExpireSweep.D() < time.Minute) {
		e.add("pop3.expire_sweep", "must be 0 (no sweep) or at least 1m")
	}
	if p.LoginDelay < 0 || p.LoginDelay > 31*24*3600 {
		e.add("pop3.login_delay", "must be 0..2678400 seconds (is %d)", p.LoginDelay)
	}
	if _, err := pop3.ParseDelays(p.LoginDelayDomains); err != nil {
		e.add("pop3.login_delay_domains", "%v", err)
	}

	switch c.Auth.SCRAM {
	case "auto", "on", "off":
	default:
		e.add("auth.scram", "must be auto, on or off (is %q)", c.Auth.SCRAM)
	}

	// [smtp]
	s := c.SMTP
	checkListeners(e, "smtp.listen", s.Listen)
	checkListeners(e, "smtp.lmtp_listen", s.LMTPListen)
	if strings.ContainsFunc(s.Hostname, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		e.add("smtp.hostname", "must not contain spaces, control or non-ASCII characters")
	}
	if s.MaxMessageSize <= 0 {
		e.add("smtp.max_message_size", "must be positive")
	}
	if s.MaxRecipients < MinMaxRecipient {
		e.add("smtp.max_recipients", "must be at least %d (is %d)", MinMaxRecipient, s.MaxRecipients)
	}
	if s.Relay != "" {
		if msg := checkHostPort(s.Relay, false); msg != "" {
			e.add("smtp.relay", "%s", msg)
		}
	}
	if s.RetryFor <= 0 {
		e.add("smtp.retry_for", "must be positive")
	}
	if s.QueueScan <= 0 {
		e.add("smtp.queue_scan", "must be positive")
	}
	if s.MaxLine < MinSMTPLine || s.MaxLine > MaxMaxLine {
		e.add("smtp.max_line", "must be between %d (RFC 5321 section 4.5.3.1.6) and %d (is %d)", MinSMTPLine, MaxMaxLine, s.MaxLine)
	}
	if s.MaxConnections < 0 {
		e.add("smtp.max_connections", "must not be negative (0: no limit)")
	}
	if s.MaxConnsPerIP < 0 {
		e.add("smtp.max_conns_per_ip", "must not be negative (0: no limit)")
	}
	if s.MaxConnsPerNet < 0 {
		e.add("smtp.max_conns_per_net", "must not be negative (0: no limit)")
	}
	if s.MaxConnsPerNet48 < 0 {
		e.add("smtp.max_conns_per_net48", "must not be negative (0: no limit)")
	}
	if s.TransactionDeadline <= 0 {
		e.add("smtp.transaction_deadline", "must be positive")
	}
	if s.DataTimeout <= 0 {
		e.add("smtp.data_timeout", "must be positive")
	}
	if s.ReadTimeout <= 0 {
		e.add("smtp.read_timeout", "must be positive")
	}
	if s.WriteTimeout <= 0 {
		e.add("smtp.write_timeout", "must be positive")
	}

	// [submission]
	sub := c.Submission
	checkListeners(e, "submission.listen", sub.Listen)
	checkListeners(e, "submission.listen_tls", sub.ListenTLS)
	for i, a := range sub.Aliases {
		if msg := checkAlias(a); msg != "" {
			e.add(fmt.Sprintf("submission.aliases[%d]", i), "%s", msg)
		}
	}
	if sub.MaxMessagesPerHour < 0 {
		e.add("submission.max_messages_per_hour", "must not be negative (0: no limit)")
	}
	if sub.MaxRecipients < 1 {
		e.add("submission.max_recipients", "must be at least 1 (is %d)", sub.MaxRecipients)
	}

	// [outbound]
	ob := c.Outbound
	if ob.Smarthost != "" {
		if msg := checkHostPort(ob.Smarthost, false); msg != "" {
			e.add("outbound.smarthost", "%s", msg)
		}
	}
	if ob.Resolver != "" {
		if msg := checkHostPort(ob.Resolver, false); msg != "" {
			e.add("outbound.resolver", "%s", msg)
		}
	}
	if !contains([]string{"", "starttls", "tls"}, ob.SmarthostTLS) {
		e.add("outbound.smarthost_tls", "must be \"\" (STARTTLS when offered), \"starttls\" or \"tls\" (is %q)", ob.SmarthostTLS)
	}
	if ob.SmarthostUser != "" && ob.Smarthost == "" {
		e.add("outbound.smarthost_user", "is set but outbound.smarthost is not")
	}
	if ob.MXPort < 1 || ob.MXPort > 65535 {
		e.add("outbound.mx_port", "must be a port between 1 and 65535 (is %d)", ob.MXPort)
	}
	if ob.MaxPerDestination < 1 {
		e.add("outbound.max_per_destination", "must be at least 1 (is %d)", ob.MaxPerDestination)
	}
	if ob.Workers < 1 {
		e.add("outbound.workers", "must be at least 1 (is %d)", ob.Workers)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"outbound.retry_for", ob.RetryFor}, {"outbound.retry_min", ob.RetryMin}, {"outbound.retry_max", ob.RetryMax},
		{"outbound.connect_timeout", ob.ConnectTimeout}, {"outbound.timeout", ob.Timeout}} {
		if d.v <= 0 {
			e.add(d.key, "must be positive")
		}
	}
	if ob.DKIMSelector == "" || strings.ContainsFunc(ob.DKIMSelector, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
	}) {
		e.add("outbound.dkim_selector", "must be a DNS label or labels: letters, digits, '-' and '.' (is %q)", ob.DKIMSelector)
	}
	if ob.RetryMax < ob.RetryMin {
		e.add("outbound.retry_max", "must not be below outbound.retry_min")
	}

	// [tls]
	if !contains(TLSVersions, c.TLS.MinVersion) {
		e.add("tls.min_version", "must be one of %s (is %q)", strings.Join(TLSVersions, ", "), c.TLS.MinVersion)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		if c.TLS.Cert == "" {
			e.add("tls.cert", "must be set when tls.key is set")
		} else {
			e.add("tls.key", "must be set when tls.cert is set")
		}
	}
	if c.TLS.HandshakeTimeout <= 0 {
		e.add("tls.handshake_timeout", "must be positive")
	}

	// [admin]: empty disables the admin listener.
	if c.Admin.Listen != "" {
		if msg := checkHostPort(c.Admin.Listen, true); msg != "" {
			e.add("admin.listen", "%s", msg)
		}
	}

	// [limits]
	l := c.Limits
	if l.MaxLine < MinMaxLine || l.MaxLine > MaxMaxLine {
		e.add("limits.max_line", "must be between %d (RFC 2449 section 4) and %d (is %d)", MinMaxLine, MaxMaxLine, l.MaxLine)
	}
	if l.MaxAuthLine < l.MaxLine {
		e.add("limits.max_auth_line", "must be at least limits.max_line (%d < %d)", l.MaxAuthLine, l.MaxLine)
	}
	if l.MaxBadCommands < 1 {
		e.add("limits.max_bad_commands", "must be at least 1 (is %d)", l.MaxBadCommands)
	}
	if l.MaxAuthFailures < 1 {
		e.add("limits.max_auth_failures", "must be at least 1 (is %d)", l.MaxAuthFailures)
	}
	if l.MaxConnsPerIP < 0 {
		e.add("limits.max_conns_per_ip", "must not be negative (0: no limit) (is %d)", l.MaxConnsPerIP)
	}
	if l.MaxInbound < l.MaxLine {
		e.add("limits.max_inbound", "must be at least limits.max_line (%d < %d)", l.MaxInbound, l.MaxLine)
	}
	if l.MaxPipelined < 1 {
		e.add("limits.max_pipelined", "must be at least 1 (is %d)", l.MaxPipelined)
	}
	if l.PreloginPerIP < 1 {
		e.add("limits.prelogin_per_ip", "must be at least 1 (is %d)", l.PreloginPerIP)
	}
	if l.PreloginPerNet < l.PreloginPerIP {
		e.add("limits.prelogin_per_net", "must be at least limits.prelogin_per_ip (%d < %d)", l.PreloginPerNet, l.PreloginPerIP)
	}
	if l.PreloginPerNet48 < l.PreloginPerNet {
		e.add("limits.prelogin_per_net48", "must be at least limits.prelogin_per_net (%d < %d)", l.PreloginPerNet48, l.PreloginPerNet)
	}
	if l.BacklogMaxInput < 0 {
		e.add("limits.backlog_max_input", "must not be negative (is %d)", l.BacklogMaxInput)
	}
	if l.OutboundLowMark < 0 {
		e.add("limits.outbound_low_mark", "must not be negative (is %d)", l.OutboundLowMark)
	}
	if l.OutboundLowMark >= l.OutboundHighMark {
		e.add("limits.outbound_low_mark", "must be below limits.outbound_high_mark (%d >= %d)", l.OutboundLowMark, l.OutboundHighMark)
	}

	// [quota]
	if c.Quota.DomainDefault < 0 {
		e.add("quota.domain_default", "must not be negative")
	}

	// [oauth]
	if o := c.OAuth; o.Issuer != "" {
		if o.Audience == "" {
			e.add("oauth.audience", "must be set when oauth.issuer is")
		}
		if o.Claim == "" {
			e.add("oauth.claim", "must name the claim that holds the mailbox")
		}
		n := 0
		for _, v := range []string{o.JWKSFile, o.JWKSURL, o.IntrospectionURL} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			e.add("oauth.jwks_file", "exactly one of oauth.jwks_file, oauth.jwks_url and oauth.introspection_url must be set when oauth.issuer is")
		}
		for _, k := range []struct{ key, v string }{{"oauth.jwks_url", o.JWKSURL}, {"oauth.introspection_url", o.IntrospectionURL}} {
			if k.v == "" {
				continue
			}
			u, err := url.Parse(k.v)
			loopback := err == nil && (u.Hostname() == "localhost" || net.ParseIP(u.Hostname()).IsLoopback())
			if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback)) {
				e.add(k.key, "must be an https URL (http only on loopback)")
			}
		}
		if o.IntrospectionURL != "" && o.ClientID == "" {
			e.add("oauth.client_id", "must be set with oauth.introspection_url (RFC 7662 asks the caller to authenticate)")
		}
	}
	if c.OAuth.MaxIntrospections < 0 || c.OAuth.MaxIntrospections > 1024 {
		e.add("oauth.max_introspections", "must be 1..1024, or 0 for 16 (is %d)", c.OAuth.MaxIntrospections)
	}
	if d := c.OAuth.IntrospectionCache.D(); d < 0 || d > time.Hour {
		e.add("oauth.introspection_cache", "must be 0s (off) to 1h (is %s)", d)
	}
	if n := c.OAuth.IntrospectionCacheEntries; n < 1 || n > 1_000_000 {
		e.add("oauth.introspection_cache_entries", "must be 1..1000000 (is %d)", n)
	}

	// [ldap]
	d := c.LDAP
	if d.URL != "" {
		if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
			e.add("ldap.url", "must be ldap://host[:port] or ldaps://host[:port] (is %q)", d.URL)
		}
	}
	if c.Auth.Method == "directory" {
		if d.URL == "" {
			e.add("ldap.url", "must be set when auth.method is \"directory\"")
		}
		if d.BindDN == "" && d.SearchBase == "" {
			e.add("ldap.bind_dn", "ldap.bind_dn (direct bind) or ldap.search_base (search) must be set when auth.method is \"directory\"")
		}
	}
	if d.SearchBase != "" && d.SearchFilter == "" {
		e.add("ldap.search_filter", "must be set when ldap.search_base is set")
	}
	if d.Timeout <= 0 {
		e.add("ldap.timeout", "must be positive")
	}
	if d.PoolSize < 1 {
		e.add("ldap.pool_size", "must be at least 1 (is %d)", d.PoolSize)
	}
	return e.err()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// nameRule strips the "invalid name: " prefix of a store naming error.
func nameRule(err error) string {
	return strings.TrimPrefix(err.Error(), store.ErrInvalidName.Error()+": ")
}

func checkGreeting(g string) string {
	if g == "" {
		return "must not be empty"
	}
	if len(g) > MaxGreetingLen {
		return fmt.Sprintf("has %d characters, the limit is %d", len(g), MaxGreetingLen)
	}
	for i := 0; i < len(g); i++ {
		if g[i] < 0x20 || g[i] > 0x7e {
			return fmt.Sprintf("must be printable ASCII on one line; byte %d is 0x%02x", i, g[i])
		}
	}
	return ""
}

func checkListeners(e *Errors, key string, addrs []string) {
	seen := map[string]bool{}
	for i, a := range addrs {
		k := fmt.Sprintf("%s[%d]", key, i)
		if msg := checkHostPort(a, true); msg != "" {
			e.add(k, "%s", msg)
			continue
		}
		if seen[a] {
			e.add(k, "%q is listed twice", a)
		}
		seen[a] = true
	}
}

// checkHostPort checks "host:port". Port 0 (any free port) is accepted
// only for listeners.
func checkHostPort(a string, listener bool) string {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (%s)", a, strings.TrimPrefix(err.Error(), "address "+a+": "))
	}
	n, err := strconv.Atoi(port)
	lo := 1
	if listener {
		lo = 0
	}
	if err != nil || n < lo || n > 65535 {
		return fmt.Sprintf("%q: port must be a number between %d and 65535", a, lo)
	}
	return ""
}

// checkAlias checks one submission.aliases entry, "user@domain=alias@domain".
func checkAlias(a string) string {
	user, alias, ok := strings.Cut(a, "=")
	if !ok {
		return fmt.Sprintf("%q is not user@domain=alias@domain", a)
	}
	for _, s := range []string{user, alias} {
		i := strings.LastIndexByte(s, '@')
		if i <= 0 || i == len(s)-1 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '<' || r == '>' }) {
			return fmt.Sprintf("%q in %q is not an address local@domain", s, a)
		}
	}
	return ""
}
