// Package config is the service's one TOML configuration file: the seed's
// registry settings. pop3d reads it at start and on SIGHUP; pop3ctl get/set
// read and change it with the same validation as pop3d -check.
package config

import "time"

// Config is the whole file. TOML keys are the field tags; relative paths
// resolve against the config file's folder.
type Config struct {
	MailRoot      string `toml:"mailroot"`       // mail root folder
	Node          int    `toml:"node"`           // this server's number among those sharing the store, 0..99999
	Logging       int    `toml:"logging"`        // Winpop's levels 0 (none) .. 3 (max), 4 debug
	Greeting      string `toml:"greeting"`       // greeting text; never carries a version
	DefaultDomain string `toml:"default_domain"` // domain for bare login names; empty: none
	// LockLease is how long a mailbox lock of a server that stopped
	// renewing it (a dead or frozen machine) keeps others out. Every
	// server sharing a store must use the same value; a restart applies it.
	LockLease Duration `toml:"lock_lease"`

	Auth Auth `toml:"auth"`
	POP3 POP3 `toml:"pop3"`
	SMTP SMTP `toml:"smtp"`
	// Submission is mail submission for the service's own users (RFC 6409).
	Submission Submission `toml:"submission"`
	// Outbound is the delivery agent for submitted mail to other domains.
	Outbound Outbound `toml:"outbound"`
	TLS      TLS      `toml:"tls"`
	Admin    Admin    `toml:"admin"`
	Limits   Limits   `toml:"limits"`
	Quota    Quota    `toml:"quota"`
	LDAP     LDAP     `toml:"ldap"`
	OAuth    OAuth    `toml:"oauth"`
}

// Auth selects the authentication method.
type Auth struct {
	Method      string   `toml:"method"`      // passwordfile | system | directory
	SPARequired bool     `toml:"sparequired"` // no plaintext passwords on unencrypted links
	PAMService  string   `toml:"pam_service"` // PAM service name for method "system"
	FailDelay   Duration `toml:"fail_delay"`  // fixed delay before answering a failed login
	// CacheTTL is how long a successful password-file check is remembered
	// in memory, so that clients polling every few minutes do not each pay
	// for an argon2id computation. A changed password takes effect at once.
	// "0s" turns the cache off.
	CacheTTL Duration `toml:"cache_ttl"`
	// Brute-force protection: a per-address penalty added to FailDelay for
	// each recent failure, up to PenaltyMax; BanAfter failures within
	// BanWindow ban the address for BanTime (0 disables the ban).
	Penalty     Duration `toml:"penalty"`
	PenaltyMax  Duration `toml:"penalty_max"`
	BanAfter    int      `toml:"ban_after"`
	BanWindow   Duration `toml:"ban_window"`
	BanTime     Duration `toml:"ban_time"`
	AllowNTLMv1 bool     `toml:"allow_ntlmv1"` // accept NTLMv1 / LM responses (off: NTLMv2 only)
	// APOP and NTLM offer those challenge-response paths (both need the
	// password file's secrets; RFC 1939 section 7 APOP rests on MD5).
	APOP bool `toml:"apop"`
	NTLM bool `toml:"ntlm"`
	// ReversibleSecrets keeps, in each password record, the password and
	// NT hash sealed under the store key that APOP, CRAM-MD5 and NTLM
	// need. Off: those three are neither offered nor accepted, new
	// records keep no sealed secret, and a record that has one loses it
	// at the next password change or successful plaintext login.
	ReversibleSecrets bool `toml:"reversible_secrets"`
	// SCRAM offers SCRAM-SHA-256 (and -PLUS over TLS) with the password
	// file: "auto" once every mailbox with a password has SCRAM keys
	// (checked at start and every ten minutes; a mailbox gains them at its
	// next password change or plaintext login), "on" always (a mailbox
	// without keys fails SCRAM like a wrong password), "off" never.
	SCRAM string `toml:"scram"`
	// The hash of new passwords, and of stored ones at their next
	// successful login: "argon2id" (Argon2Time passes over Argon2Memory
	// with Argon2Threads lanes), "bcrypt" (BcryptCost) or "sha512-crypt"
	// (SHA512Rounds). Hashes of all three kinds are verified whatever
	// Hash says.
	Hash          string `toml:"hash"`
	Argon2Time    int    `toml:"argon2_time"`
	Argon2Memory  Size   `toml:"argon2_memory"`
	Argon2Threads int    `toml:"argon2_threads"`
	BcryptCost    int    `toml:"bcrypt_cost"`
	SHA512Rounds  int    `toml:"sha512_rounds"`
	// The auth queue: at most HashWorkers plaintext checks run at once (0:
	// one per core), fewer when their hashes' memory would pass HashMemory;
	// up to Queue more wait, and beyond that a login gets [SYS/TEMP].
	HashWorkers int  `toml:"hash_workers"`
	HashMemory  Size `toml:"hash_memory"`
	Queue       int  `toml:"queue"`
	// SuspectWorkers: at most this many of the running checks are for
	// suspect addresses (0: half of the workers, rounded up).
	SuspectWorkers int `toml:"suspect_workers"`
	// HashGCRoom: room the collector is given for the garbage hashes
	// leave (see auth.QueueOptions.GCRoom); "0": none. Only with
	// HashProcesses off: hashes computed in worker processes leave no
	// garbage in pop3d.
	HashGCRoom Size `toml:"hash_gc_room"`
	// HashProcesses runs password checks in worker processes, at nice
	// HashNice, and those of suspect addresses at SuspectNice (see
	// credential.Workers); off: on goroutines of pop3d.
	HashProcesses bool `toml:"hash_processes"`
	HashNice      int  `toml:"hash_nice"`
	SuspectNice   int  `toml:"suspect_nice"`
	// NetFailures recent failed logins from one network (IPv4 /24, IPv6
	// /48) put the password checks of all its addresses in the auth
	// queue's suspect line; 0: only an address's own failures do.
	NetFailures int `toml:"net_failures"`
	// NetTrust: a successful login puts the checks of its network's
	// addresses ahead of networks not seen logging in, for this long
	// ("0s": never).
	NetTrust Duration `toml:"net_trust"`
}

// POP3 is the POP3 service and its socket and thread pools.
type POP3 struct {
	Listen          []string `toml:"listen"`          // plaintext listeners (STLS offered when TLS is available)
	ListenTLS       []string `toml:"listen_tls"`      // implicit TLS listeners
	STLS            bool     `toml:"stls"`            // offer STLS (RFC 2595) on the plaintext listeners
	SocketMin       int      `toml:"socketmin"`       // connection contexts prepared at start
	SocketThreshold int      `toml:"socketthreshold"` // when fewer spare contexts remain, prepare this many more
	SocketMax       int      `toml:"socketmax"`       // connections served at once
	SocketBacklog   int      `toml:"socketbacklog"`   // connections accepted beyond socketmax, held silent until a slot frees
	ListenBacklog   int      `toml:"listen_backlog"`  // the kernel's listen queue; 0: the system's somaxconn
	BacklogWait     Duration `toml:"backlog_wait"`    // longest a held connection waits for a slot
	ThreadCount     int      `toml:"threadcount"`     // worker pool size for disk and crypto work
	TaskQueue       int      `toml:"task_queue"`      // tasks that may wait for a busy pool before commands get "server busy"
	LoginTimeout    Duration `toml:"login_timeout"`   // idle limit before authentication
	// LoginDeadline is the whole time a connection has, from connect, to
	// authenticate, whatever it sends meanwhile.
	LoginDeadline Duration `toml:"login_deadline"`
	// ShedAt is the fill of the socket pool, in percent of socketmax, from
	// which a new connection from another network sheds an unauthenticated
	// connection of the network that holds the most.
	ShedAt      int      `toml:"shed_at"`
	IdleTimeout Duration `toml:"idle_timeout"` // idle limit after authentication (RFC 1939: at least 10m)
	// RefuseDelay holds a connection refused because socketmax and
	// socketbacklog are full open and silent this long before its
	// refusal, so that a client redialling at once is refused once per
	// delay; RefuseHold of them at most, beyond which refusal is at once
	// (0: what the file descriptor limit leaves, see wiring.RefuseHold).
	// "0s": at once.
	RefuseDelay Duration `toml:"refuse_delay"`
	RefuseHold  int      `toml:"refuse_hold"`
	// Expire is the server's retention of retrieved messages (EXPIRE,
	// RFC 2449 section 6.7): "" none (EXPIRE not advertised unless a
	// domain or mailbox has one), "never", or days counted from a message's
	// first retrieval (0: deleted when that session ends).
	Expire          string   `toml:"expire"`
	ExpireDomains   []string `toml:"expire_domains"`   // "domain=DAYS" or "domain=never", over expire
	ExpireMailboxes []string `toml:"expire_mailboxes"` // "mailbox@domain=DAYS|never", over the domain's (pop3ctl expire)
	ExpireSweep     Duration `toml:"expire_sweep"`     // how often mailboxes not in use are swept for expired messages; 0: only at QUIT
	// LoginDelay is the least time in seconds between two logins of a
	// mailbox (LOGIN-DELAY, RFC 2449 section 6.8); 0: none.
	LoginDelay        int      `toml:"login_delay"`
	LoginDelayDomains []string `toml:"login_delay_domains"` // "domain=SECONDS", over login_delay
}

// SMTP is the SMTP service and the delivery service.
type SMTP struct {
	Listen         []string `toml:"listen"`
	LMTPListen     []string `toml:"lmtp_listen"`
	Hostname       string   `toml:"hostname"`         // the service's name (SMTP greeting, Received, APOP/CRAM-MD5/NTLM challenges); empty: the host name
	MaxMessageSize Size     `toml:"max_message_size"` // "50MB"
	MaxRecipients  int      `toml:"max_recipients"`
	Relay          string   `toml:"relay"`         // host:port for NDRs to remote senders; empty: none
	RetryFor       Duration `toml:"retry_for"`     // give up on temporary delivery failures after this long
	QueueScan      Duration `toml:"queue_scan"`    // periodic queue scan
	MaxLine        int      `toml:"max_line"`      // longest SMTP line in octets, CRLF included (commands and message data)
	ReadTimeout    Duration `toml:"read_timeout"`  // wait for the client's next command or data
	DataTimeout    Duration `toml:"data_timeout"`  // longest one command or message transfer may take while data keeps coming
	WriteTimeout   Duration `toml:"write_timeout"` // wait for a reply to be written
	// MaxConnections bounds the SMTP and LMTP sessions open at once, and
	// MaxConnsPerIP those from one address (0: no limit); beyond them a
	// client gets "421 4.7.0" and is closed.
	MaxConnections int `toml:"max_connections"`
	MaxConnsPerIP  int `toml:"max_conns_per_ip"`
	// MaxConnsPerNet bounds the sessions from one IPv4 /24 or IPv6 /64,
	// MaxConnsPerNet48 those from one IPv6 /48 (0: no limit).
	MaxConnsPerNet   int `toml:"max_conns_per_net"`
	MaxConnsPerNet48 int `toml:"max_conns_per_net48"`
	// TransactionDeadline is the whole time a client has, from connect,
	// to start its first mail transaction (MAIL FROM accepted).
	TransactionDeadline Duration `toml:"transaction_deadline"`
}

// Submission is the mail submission service (RFC 6409, RFC 8314): the
// service's users send mail through it after SMTP AUTH (RFC 4954), with
// the authentication methods and brute-force guard of POP3.
type Submission struct {
	Listen    []string `toml:"listen"`     // STARTTLS listeners (587 in production)
	ListenTLS []string `toml:"listen_tls"` // implicit-TLS listeners (465 in production)
	// SPARequired refuses PLAIN and LOGIN on a link without TLS, as
	// auth.sparequired does for POP3; CRAM-MD5 stays offered.
	SPARequired bool `toml:"sparequired"`
	// Aliases are further sender addresses a user may use, each
	// "user@domain=alias@domain".
	Aliases []string `toml:"aliases"`
	// MaxMessagesPerHour is how many messages one user may submit in any
	// hour (0: no limit); MaxRecipients the recipients of one message.
	MaxMessagesPerHour int `toml:"max_messages_per_hour"`
	MaxRecipients      int `toml:"max_recipients"`
}

// Outbound is the outbound delivery agent: submitted mail for other
// domains goes to their MX hosts (or a smarthost) over SMTP.
type Outbound struct {
	// Smarthost is "host:port" every message is sent to; empty: MX look-up.
	Smarthost         string `toml:"smarthost"`
	SmarthostUser     string `toml:"smarthost_user"`     // AUTH PLAIN with the smarthost (over TLS only); empty: no AUTH
	SmarthostPassword string `toml:"smarthost_password"` // its password
	SmarthostTLS      string `toml:"smarthost_tls"`      // "" (STARTTLS when offered), "starttls" (required) or "tls" (implicit TLS)
	// Resolver is "host:port" of the DNS server for MX look-ups; empty:
	// the system's resolver.
	Resolver string `toml:"resolver"`
	// MXPort is the port of the mail servers MX look-up finds.
	MXPort int `toml:"mx_port"`
	// MaxPerDestination bounds the conversations with one server at once.
	MaxPerDestination int `toml:"max_per_destination"`
	// Workers is how many messages are sent at once.
	Workers int `toml:"workers"`
	// RetryFor is how long a message is retried after temporary failures
	// before it fails with a report to the sender; RetryMin is the first
	// wait, doubling up to RetryMax.
	RetryFor Duration `toml:"retry_for"`
	RetryMin Duration `toml:"retry_min"`
	RetryMax Duration `toml:"retry_max"`
	// ConnectTimeout bounds one connection attempt, Timeout one whole
	// conversation with a server.
	ConnectTimeout Duration `toml:"connect_timeout"`
	Timeout        Duration `toml:"timeout"`
	// DKIMSelector is the selector of the DKIM signatures (RFC 6376) made
	// with the keys pop3ctl dkim add creates; a sender's domain without a
	// key is not signed.
	DKIMSelector string `toml:"dkim_selector"`
}

// TLS is the certificate for STLS, implicit TLS and SMTP STARTTLS.
type TLS struct {
	Cert             string   `toml:"cert"`              // PEM file; empty: a self-signed pair under the mail root
	Key              string   `toml:"key"`               //
	MinVersion       string   `toml:"min_version"`       // "1.2" or "1.3" ("1.0", "1.1" for old clients)
	HandshakeTimeout Duration `toml:"handshake_timeout"` //
}

// Admin is the admin listener: API, browser console and /metrics.
type Admin struct {
	Listen string `toml:"listen"`
	// Pprof serves Go's profiler at /debug/pprof/ on the admin listener.
	// Keep the listener on loopback when it is on.
	Pprof bool `toml:"pprof"`
	// Console serves the browser console at /console/ on the admin
	// listener (a reload applies it). The console changes mail and
	// settings without asking for a password: keep admin.listen on
	// loopback, or behind a proxy that authenticates.
	Console bool `toml:"console"`
}

// Limits are the protocol limits.
type Limits struct {
	MaxLine          int `toml:"max_line"`           // longest input line in octets, CRLF included
	MaxAuthLine      int `toml:"max_auth_line"`      // longest SASL continuation line
	MaxBadCommands   int `toml:"max_bad_commands"`   // bad commands before login before the connection is closed
	MaxAuthFailures  int `toml:"max_auth_failures"`  // failed logins on one connection before it is closed
	MaxConnsPerIP    int `toml:"max_conns_per_ip"`   // 0: no limit
	MaxInbound       int `toml:"max_inbound"`        // octets buffered unread per connection before it is closed
	BacklogMaxInput  int `toml:"backlog_max_input"`  // octets a held (backlogged) connection may send
	OutboundHighMark int `toml:"outbound_high_mark"` // pause a RETR stream above this many queued octets
	OutboundLowMark  int `toml:"outbound_low_mark"`  // resume it below this
	MaxPipelined     int `toml:"max_pipelined"`      // commands waiting behind the one in flight before the connection is refused
	// Unauthenticated connections (held in the backlog or served) from one
	// address, one IPv4 /24 or IPv6 /64, and one IPv6 /48.
	PreloginPerIP    int `toml:"prelogin_per_ip"`
	PreloginPerNet   int `toml:"prelogin_per_net"`
	PreloginPerNet48 int `toml:"prelogin_per_net48"`
}

// Quota holds quota defaults.
type Quota struct {
	DomainDefault Size `toml:"domain_default"` // quota for mailboxes without a quota file; 0: none
}

// LDAP is the directory for auth.method = "directory".
// OAuth is OAuth 2.0 bearer-token login (SASL OAUTHBEARER, RFC 7628, and
// XOAUTH2): tokens are JWTs signed by the issuer's keys. Off while issuer
// is empty.
type OAuth struct {
	Issuer   string `toml:"issuer"`    // the iss every token must carry
	Audience string `toml:"audience"`  // a value its aud must hold
	JWKSFile string `toml:"jwks_file"` // the issuer's keys, a local JWK Set
	JWKSURL  string `toml:"jwks_url"`  // or fetched from this URL (https, or http on loopback)
	Claim    string `toml:"claim"`     // the claim naming the mailbox
	// IntrospectionURL, instead of the two JWKS keys: tokens are checked
	// by asking the authorization server (RFC 7662), which ClientID and
	// ClientSecret authenticate to; at most MaxIntrospections requests
	// run at once.
	IntrospectionURL  string `toml:"introspection_url"`
	ClientID          string `toml:"client_id"`
	ClientSecret      string `toml:"client_secret"`
	MaxIntrospections int    `toml:"max_introspections"`
	// IntrospectionCache remembers an answer that accepted a token for
	// this long (never past its exp; 0: ask every time), at most
	// IntrospectionCacheEntries answers.
	IntrospectionCache        Duration `toml:"introspection_cache"`
	IntrospectionCacheEntries int      `toml:"introspection_cache_entries"`
}

type LDAP struct {
	URL          string   `toml:"url"`           // ldap://host:389, ldaps://host:636
	StartTLS     bool     `toml:"starttls"`      //
	BindDN       string   `toml:"bind_dn"`       // template with %u (mailbox), %d (domain), %s (mailbox@domain); direct bind
	SearchBase   string   `toml:"search_base"`   // search mode when set
	SearchFilter string   `toml:"search_filter"` // e.g. (mail=%s) or (userPrincipalName=%s)
	ServiceDN    string   `toml:"service_dn"`    // optional account for searching
	ServicePass  string   `toml:"service_password"`
	Timeout      Duration `toml:"timeout"`
	PoolSize     int      `toml:"pool_size"`
	CACert       string   `toml:"ca_cert"` // PEM file to verify the server; empty: the system's roots
	Insecure     bool     `toml:"insecure_skip_verify"`
}

// Default returns the embedded defaults: a working service for a non-root
// user on a fresh machine, mail root under the working folder, loopback
// listeners on unprivileged ports.
func Default() *Config {
	return &Config{
		LockLease: Duration(90 * time.Second),
		MailRoot:  "mailroot",
		Node:      1,
		Logging:   3,
		Greeting:  "POP3 service ready",
		Auth: Auth{
			Method:     "passwordfile",
			APOP:       true,
			NTLM:       true,
			SCRAM:      "auto",
			PAMService: "pop3d",
			FailDelay:  Duration(2 * time.Second),
			CacheTTL:   Duration(10 * time.Minute),
			Penalty:    Duration(1 * time.Second),
			PenaltyMax: Duration(15 * time.Second),
			BanAfter:   0,
			BanWindow:  Duration(10 * time.Minute),
			BanTime:    Duration(15 * time.Minute),

			Hash:          "argon2id",
			Argon2Time:    3,
			Argon2Memory:  19 << 20,
			Argon2Threads: 1,
			BcryptCost:    10,
			SHA512Rounds:  5000,
			HashWorkers:   0,
			HashMemory:    256 << 20,
			Queue:         256,
			NetFailures:   2,
			HashGCRoom:    64 << 20,
			HashProcesses: true,
			HashNice:      0,
			SuspectNice:   19,
			NetTrust:      Duration(time.Hour),

			ReversibleSecrets: true,
		},
		POP3: POP3{
			Listen:          []string{"127.0.0.1:1100"},
			ListenTLS:       []string{"127.0.0.1:9950"},
			STLS:            true,
			SocketMin:       10,
			SocketThreshold: 5,
			SocketMax:       10000,
			SocketBacklog:   1000,
			BacklogWait:     Duration(30 * time.Second),
			ThreadCount:     64,
			TaskQueue:       4096,
			LoginTimeout:    Duration(60 * time.Second),
			LoginDeadline:   Duration(60 * time.Second),
			ShedAt:          90,
			RefuseDelay:     Duration(10 * time.Second),
			RefuseHold:      0,
			IdleTimeout:     Duration(10 * time.Minute),
			ExpireSweep:     Duration(time.Hour),
		},
		SMTP: SMTP{
			Listen:              []string{"127.0.0.1:2525"},
			LMTPListen:          []string{},
			MaxMessageSize:      50 << 20,
			MaxRecipients:       100,
			RetryFor:            Duration(48 * time.Hour),
			QueueScan:           Duration(time.Minute),
			MaxLine:             2000,
			MaxConnections:      1000,
			MaxConnsPerIP:       20,
			MaxConnsPerNet:      100,
			MaxConnsPerNet48:    400,
			TransactionDeadline: Duration(2 * time.Minute),
			ReadTimeout:         Duration(5 * time.Minute),
			DataTimeout:         Duration(time.Hour),
			WriteTimeout:        Duration(5 * time.Minute),
		},
		Submission: Submission{
			Listen:             []string{"127.0.0.1:5870"},
			ListenTLS:          []string{"127.0.0.1:4650"},
			SPARequired:        true,
			Aliases:            []string{},
			MaxMessagesPerHour: 200,
			MaxRecipients:      50,
		},
		Outbound: Outbound{
			MXPort:            25,
			MaxPerDestination: 4,
			Workers:           8,
			RetryFor:          Duration(5 * 24 * time.Hour),
			RetryMin:          Duration(time.Minute),
			RetryMax:          Duration(time.Hour),
			ConnectTimeout:    Duration(30 * time.Second),
			Timeout:           Duration(10 * time.Minute),
			DKIMSelector:      "pop3d",
		},
		TLS: TLS{
			MinVersion:       "1.2",
			HandshakeTimeout: Duration(15 * time.Second),
		},
		Admin: Admin{Listen: "127.0.0.1:8110", Console: true},
		Limits: Limits{
			MaxLine:          1024,
			MaxAuthLine:      8192,
			MaxBadCommands:   10,
			MaxAuthFailures:  3,
			MaxConnsPerIP:    0,
			MaxInbound:       128 << 10,
			MaxPipelined:     10000,
			PreloginPerIP:    20,
			PreloginPerNet:   100,
			PreloginPerNet48: 400,
			BacklogMaxInput:  1024,
			OutboundHighMark: 256 << 10,
			OutboundLowMark:  64 << 10,
		},
		LDAP: LDAP{
			SearchFilter: "(mail=%s)",
			Timeout:      Duration(5 * time.Second),
			PoolSize:     4,
		},
		OAuth: OAuth{Claim: "email", MaxIntrospections: 16, IntrospectionCacheEntries: 10000},
	}
}
