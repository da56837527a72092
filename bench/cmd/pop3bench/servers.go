package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
)

// server is a server under test that the harness started.
type server struct {
	name     string
	cmd      *exec.Cmd
	addr     string // POP3
	tlsAddr  string // POP3S, "" when not served
	smtp     string // SMTP, "" when not served
	admin    string // pop3d's admin listener (/debug/pprof/ with admin.pprof), "" for the peer
	exited   chan struct{}
	stopping *atomic.Bool                               // set by stop: an exit after it is expected
	start    func(ctx context.Context) (*server, error) // starts it again (restart)
}

// restart stops the server and starts a fresh process with the same
// configuration, so that a memory baseline is not inflated by earlier runs.
func (s *server) restart(ctx context.Context) error {
	s.stop()
	ns, err := s.start(ctx)
	if err != nil {
		return err
	}
	ns.start = s.start
	*s = *ns
	return nil
}

// watch starts the one goroutine that waits for the server's process.
func (s *server) watch() *server {
	s.exited = make(chan struct{})
	s.stopping = new(atomic.Bool)
	go func() {
		s.cmd.Wait()
		if !s.stopping.Load() {
			fmt.Fprintf(os.Stderr, "pop3bench: %s (pid %d) exited unexpectedly at %s: %v\n",
				s.name, s.cmd.Process.Pid, time.Now().Format(time.TimeOnly), s.cmd.ProcessState)
		}
		close(s.exited)
	}()
	return s
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits up to StopWait before killing.
func (s *server) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.stopping.Store(true)
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(StopWait):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// StopWait is how long a server may take to stop before it is killed.
const StopWait = 15 * time.Second

// StartWait is how long a server may take to accept connections.
const StartWait = 20 * time.Second

// waitPort waits until addr accepts a connection and sends a greeting.
func waitPort(ctx context.Context, addr string, s *server) error {
	end := time.Now().Add(StartWait)
	for time.Now().Before(end) && ctx.Err() == nil {
		select {
		case <-s.exited:
			return fmt.Errorf("exited: %v", s.cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 256)
			n, _ := c.Read(buf)
			c.Close()
			if n > 0 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %v", addr, StartWait)
}

// stamp returns whether dir holds a corpus built from spec, and a function
// to record that it does.
func stamp(dir string, spec corpus.Spec) (bool, func() error) {
	b, _ := json.Marshal(struct {
		Version int
		Spec    corpus.Spec
	}{corpusVersion, spec})
	p := filepath.Join(dir, ".corpus-spec")
	old, err := os.ReadFile(p)
	return err == nil && string(old) == string(b), func() error { return os.WriteFile(p, b, 0o644) }
}

// corpusVersion changes when the corpus's layout changes, so that a kept
// corpus from an older harness is rebuilt. 3: each big mailbox gained
// its attachment message.
const corpusVersion = 3

// writeCert writes a self-signed ECDSA certificate and key for localhost.
func writeCert(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// dovecotOptions configure the peer.
type dovecotOptions struct {
	Binary  string // /usr/sbin/dovecot
	Dir     string // its temporary folder: config, passwd, run dir, log
	Maildir string // corpus as Maildir: <Maildir>/<mailbox>/Maildir
	Port    int
	TLSPort int    // 0: no POP3S listener
	Scheme  string // password scheme in the passwd-file (doveadm pw -l)
	Hash    string // the passwd-file entry already made (pairScheme); "": hash in Scheme
	// AuthCacheTTL, when set, turns on Dovecot's auth cache
	// (auth_cache_size DovecotAuthCacheSize) with this lifetime.
	AuthCacheTTL time.Duration
	MaxConns     int // pre-login connections to allow
	MaxProcs     int // pop3 processes to allow (one per logged-in session)
	Spec         corpus.Spec
}

// ensureDovecot installs Debian's dovecot-pop3d when the binary is missing.
func ensureDovecot(ctx context.Context, bin string) error {
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	fmt.Println("installing dovecot-pop3d (apt-get)")
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "dovecot-pop3d")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cannot install dovecot-pop3d: %w", err)
	}
	// The package starts the system's instance; this harness runs its own
	// on other ports and leaves the system's alone.
	return nil
}

// hashPassword returns the passwd-file form of the password in scheme.
func hashPassword(ctx context.Context, bin, scheme, password string) (string, error) {
	if strings.EqualFold(scheme, "PLAIN") {
		return "{PLAIN}" + password, nil
	}
	doveadm := filepath.Join(filepath.Dir(bin), "..", "bin", "doveadm")
	if _, err := os.Stat(doveadm); err != nil {
		doveadm = "doveadm"
	}
	out, err := exec.CommandContext(ctx, doveadm, "pw", "-s", scheme, "-p", password).Output()
	if err != nil {
		return "", fmt.Errorf("doveadm pw -s %s: %w", scheme, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// startDovecot writes the peer's config into o.Dir and starts it in the
// foreground (-F) as a child, so its whole process tree can be measured.
// Nothing outside o.Dir changes.
func startDovecot(ctx context.Context, o dovecotOptions) (*server, error) {
	s, err := startDovecotOnce(ctx, o)
	if s != nil {
		s.start = func(ctx context.Context) (*server, error) { return startDovecotOnce(ctx, o) }
	}
	return s, err
}

func startDovecotOnce(ctx context.Context, o dovecotOptions) (*server, error) {
	nobody, err := user.Lookup(DovecotMailUser)
	if err != nil {
		return nil, fmt.Errorf("mail user %s: %w", DovecotMailUser, err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	for _, d := range []string{"run", "state"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	// The mail user must own its Maildirs (Dovecot writes its index and uidlist there).
	if err := filepath.Walk(o.Maildir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		return nil, fmt.Errorf("cannot give the maildir to %s: %w", DovecotMailUser, err)
	}
	hash := o.Hash
	if hash == "" {
		if hash, err = hashPassword(ctx, o.Binary, o.Scheme, o.Spec.Password); err != nil {
			return nil, err
		}
	}
	authCache := ""
	if o.AuthCacheTTL > 0 {
		// As an operator runs it: a verified password is remembered, so a
		// client polling again does not pay for the hash again.
		authCache = fmt.Sprintf("auth_cache_size = %s\nauth_cache_ttl = %d secs\n",
			DovecotAuthCacheSize, int(o.AuthCacheTTL.Seconds()))
	}
	var pw strings.Builder
	for _, m := range o.Spec.Mailboxes() {
		fmt.Fprintf(&pw, "%s@%s:%s::::::\n", m, o.Spec.Domain, hash)
	}
	passwd := filepath.Join(o.Dir, "passwd")
	if err := os.WriteFile(passwd, []byte(pw.String()), 0o644); err != nil {
		return nil, err
	}
	ssl := "ssl = no"
	pop3s := ""
	if o.TLSPort > 0 {
		cert, key := filepath.Join(o.Dir, "cert.pem"), filepath.Join(o.Dir, "key.pem")
		if err := writeCert(cert, key); err != nil {
			return nil, err
		}
		ssl = fmt.Sprintf("ssl = yes\nssl_cert = <%s\nssl_key = <%s\nssl_min_protocol = TLSv1.2", cert, key)
		pop3s = fmt.Sprintf("  inet_listener pop3s {\n    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }\n", o.TLSPort)
	}
	loginProcs := max(2, (o.MaxConns+DovecotLoginClients-1)/DovecotLoginClients+1)
	conf := fmt.Sprintf(`# pop3bench: Dovecot as the peer, in its own folder.
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = pop3
listen = 127.0.0.1
%[2]s
disable_plaintext_auth = no
auth_mechanisms = plain
%[13]sfirst_valid_uid = %[3]d
first_valid_gid = %[4]d
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:%[5]s/%%n/Maildir
mail_fsync = optimized
pop3_uidl_format = %%08Xu%%08Xv
default_process_limit = %[6]d
default_client_limit = %[7]d
passdb {
  driver = passwd-file
  args = %[8]s
}
userdb {
  driver = static
  args = uid=%[3]d gid=%[4]d home=%[5]s/%%n
}
protocol pop3 {
  mail_max_userip_connections = 100000
}
# High-performance login: a few long-lived login processes, each serving
# many connections, instead of one process per connection.
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[9]d
  }
%[10]s  service_count = 0
  process_min_avail = 2
  process_limit = %[11]d
  client_limit = %[12]d
  vsz_limit = 1G
}
service pop3 {
  process_limit = %[6]d
}
service auth {
  client_limit = %[7]d
}
service anvil {
  client_limit = %[7]d
}
`, o.Dir, ssl, uid, gid, o.Maildir, o.MaxProcs+DovecotSpareProcs, o.MaxConns+1000, passwd, o.Port, pop3s, loginProcs, DovecotLoginClients, authCache)
	confPath := filepath.Join(o.Dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(o.Dir, "dovecot.stderr"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Binary, "-F", "-c", confPath)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start dovecot: %w", err)
	}
	s := (&server{name: "dovecot", cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", o.Port)}).watch()
	if o.TLSPort > 0 {
		s.tlsAddr = fmt.Sprintf("127.0.0.1:%d", o.TLSPort)
	}
	if err := waitPort(ctx, s.addr, s); err != nil {
		s.stop()
		tail, _ := os.ReadFile(filepath.Join(o.Dir, "dovecot.log"))
		return nil, fmt.Errorf("dovecot: %w\n%s", err, lastLines(tail, 10))
	}
	return s, nil
}

// Dovecot tuning for the comparison.
const (
	DovecotMailUser     = "nobody" // an existing unprivileged user owns the Maildirs
	DovecotLoginClients = 10000    // connections per pop3-login process
	DovecotSpareProcs   = 200      // pop3 processes beyond the held sessions
)

func lastLines(b []byte, n int) string {
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// pop3dOptions configure our server.
type pop3dOptions struct {
	Binary   string
	Dir      string // config and mail root live here
	Port     int
	TLSPort  int
	SMTPPort int
	Admin    int
	MaxConns int
	// Auth, when set, is the [auth] section's lines (pairing.Pop3dAuth).
	Auth string
	// Pprof serves Go's profiler on the admin listener (admin.pprof).
	Pprof bool
	// Pools, when set, replaces the pool sizes derived from MaxConns;
	// zero fields are left to pop3d's defaults.
	Pools *pop3dPools
}

// pop3dPools are pop3d's socket pool sizes.
type pop3dPools struct {
	SocketMax, Backlog int
}

// startPop3d writes a config for our server and starts it.
func startPop3d(ctx context.Context, o pop3dOptions) (*server, error) {
	s, err := startPop3dOnce(ctx, o)
	if s != nil {
		s.start = func(ctx context.Context) (*server, error) { return startPop3dOnce(ctx, o) }
	}
	return s, err
}

func startPop3dOnce(ctx context.Context, o pop3dOptions) (*server, error) {
	// The idle scenarios hold thousands of unauthenticated connections
	// from eight addresses of one /24: the pre-login caps make room.
	pools := fmt.Sprintf("socketmax = %d\nsocketbacklog = 1000\n", o.MaxConns+1000)
	limits := fmt.Sprintf("[limits]\nprelogin_per_ip = %[1]d\nprelogin_per_net = %[1]d\nprelogin_per_net48 = %[1]d\n", o.MaxConns+1000)
	if p := o.Pools; p != nil {
		pools, limits = "", ""
		if p.SocketMax > 0 {
			pools += fmt.Sprintf("socketmax = %d\n", p.SocketMax)
		}
		if p.Backlog > 0 {
			pools += fmt.Sprintf("socketbacklog = %d\n", p.Backlog)
		}
	}
	conf := fmt.Sprintf(`# pop3bench: pop3d under test.
mailroot = "mailroot"
node = 1
logging = 1
[pop3]
listen = ["127.0.0.1:%d"]
listen_tls = ["127.0.0.1:%d"]
%s[smtp]
listen = ["127.0.0.1:%d"]
[submission]
listen = []
listen_tls = []
[admin]
listen = "127.0.0.1:%d"
%s%s`, o.Port, o.TLSPort, pools, o.SMTPPort, o.Admin, pprofLine(o.Pprof), limits)
	if o.Auth != "" {
		conf += "[auth]\n" + o.Auth
	}
	confPath := filepath.Join(o.Dir, "pop3d.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// Appended, not truncated: a restart keeps what an earlier run logged
	// (a crash's trace included).
	log, err := os.OpenFile(filepath.Join(o.Dir, "pop3d.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Binary, "-config", confPath)
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start pop3d: %w", err)
	}
	s := (&server{name: "pop3d", cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", o.Port), admin: fmt.Sprintf("127.0.0.1:%d", o.Admin),
		tlsAddr: fmt.Sprintf("127.0.0.1:%d", o.TLSPort), smtp: fmt.Sprintf("127.0.0.1:%d", o.SMTPPort)}).watch()
	if err := waitPort(ctx, s.addr, s); err != nil {
		s.stop()
		tail, _ := os.ReadFile(filepath.Join(o.Dir, "pop3d.log"))
		return nil, fmt.Errorf("pop3d: %w\n%s", err, lastLines(tail, 10))
	}
	return s, nil
}

func pprofLine(on bool) string {
	if on {
		return "pprof = true\n"
	}
	return ""
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}
