package pop3dtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

const (
	slapdPath   = "/usr/sbin/slapd"
	slapaddPath = "/usr/sbin/slapadd"
)

// SlapdOptions configure a test directory.
type SlapdOptions struct {
	Suffix, RootDN, RootPW string
	// LDIF holds the entries, the suffix's own first.
	LDIF string
	// NoAnonymousSearch lets only bound clients read entries: a search
	// needs a service account, a bind still works anonymously.
	NoAnonymousSearch bool
	// CertFile and KeyFile, when set, offer StartTLS with that pair.
	CertFile, KeyFile string
}

// Slapd is a running OpenLDAP slapd (Debian package slapd) configured in
// a temporary folder and listening on a loopback port.
type Slapd struct {
	URL  string // ldap://127.0.0.1:<port>
	stop func()
}

// Stop ends slapd and removes its folder.
func (s *Slapd) Stop() { s.stop() }

// StartSlapd configures and starts slapd; the error says why it cannot
// (for a skip, or a failure in CI).
func StartSlapd(o SlapdOptions) (*Slapd, error) {
	if _, err := os.Stat(slapdPath); err != nil {
		return nil, fmt.Errorf("slapd not installed (Debian: apt-get install slapd ldap-utils)")
	}
	dir, err := os.MkdirTemp("", "pop3d-slapd-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		cleanup()
		return nil, err
	}
	access := "access to * by * read\n"
	if o.NoAnonymousSearch {
		access = "access to * by users read by anonymous auth\n"
	}
	tlsConf := ""
	if o.CertFile != "" {
		tlsConf = fmt.Sprintf("TLSCertificateFile %s\nTLSCertificateKeyFile %s\n", o.CertFile, o.KeyFile)
	}
	conf := filepath.Join(dir, "slapd.conf")
	confText := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %s/slapd.pid
%sdatabase mdb
maxsize 16777216
suffix "%s"
rootdn "%s"
rootpw %s
directory %s
access to attrs=userPassword by anonymous auth by * none
%s`, dir, tlsConf, o.Suffix, o.RootDN, o.RootPW, db, access)
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		cleanup()
		return nil, err
	}
	data := filepath.Join(dir, "data.ldif")
	if err := os.WriteFile(data, []byte(o.LDIF), 0o600); err != nil {
		cleanup()
		return nil, err
	}
	if out, err := exec.Command(slapaddPath, "-f", conf, "-l", data).CombinedOutput(); err != nil {
		cleanup()
		return nil, fmt.Errorf("slapadd: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cleanup()
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	url := "ldap://" + addr
	// -d 0: stay in the foreground so that the test owns the process.
	cmd := exec.Command(slapdPath, "-f", conf, "-h", url+"/", "-d", "0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, fmt.Errorf("starting slapd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		cleanup()
	}
	var why error
	up := Eventually(15*time.Second, func() bool {
		select {
		case <-exited:
			why = errors.New("slapd exited at start")
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	switch {
	case why != nil:
		cleanup()
		return nil, why
	case !up:
		stop()
		return nil, errors.New("slapd did not listen within 15s")
	}
	return &Slapd{URL: url, stop: stop}, nil
}
