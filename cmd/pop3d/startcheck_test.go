package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/session/auth/pam"
)

// checkFile runs pop3d -check on a file holding text and returns its exit
// status and output.
func checkFile(t *testing.T, bin, text string) (int, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pop3d.toml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-check", "-config", f).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// writePair writes a self-signed certificate and its key in PEM.
func writePair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pop3.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"pop3.example.org"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestCheckCertificateFiles(t *testing.T) {
	bin := pop3dtest.Binary(t, "pop3d")
	dir := t.TempDir()
	cert, key := writePair(t, dir)
	tlsTable := func(c, k string) string { return "[tls]\ncert = " + quote(c) + "\nkey = " + quote(k) + "\n" }
	if code, out := checkFile(t, bin, tlsTable(cert, key)); code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("-check with a good pair: exit %d\n%s", code, out)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"), 0o600)
	unreadable := filepath.Join(dir, "absent.pem")
	_, otherKey := writePair(t, t.TempDir())
	for name, files := range map[string][2]string{
		"missing cert":    {unreadable, key},
		"garbage cert":    {garbage, key},
		"key of another":  {cert, otherKey},
		"key is the cert": {cert, cert},
	} {
		code, out := checkFile(t, bin, tlsTable(files[0], files[1]))
		if code != 1 || !strings.Contains(out, "tls.cert") {
			t.Errorf("-check with %s: exit %d, want 1 naming tls.cert:\n%s", name, code, out)
		}
	}
}

func TestCheckListenAddresses(t *testing.T) {
	bin := pop3dtest.Binary(t, "pop3d")
	for name, tc := range map[string]struct {
		text, key string
	}{
		"no port":           {"[pop3]\nlisten = [\"127.0.0.1\"]\n", "pop3.listen[0]"},
		"port out of range": {"[smtp]\nlisten = [\"127.0.0.1:70000\"]\n", "smtp.listen[0]"},
		"unknown host":      {"[pop3]\nlisten_tls = [\"no-such-host.invalid:995\"]\n", "pop3.listen_tls[0]"},
		"admin bad host":    {"[admin]\nlisten = \"no-such-host.invalid:8110\"\n", "admin.listen"},
		"lmtp bad":          {"[smtp]\nlmtp_listen = [\"[::1:24\"]\n", "smtp.lmtp_listen[0]"},
	} {
		code, out := checkFile(t, bin, tc.text)
		if code != 1 || !strings.Contains(out, tc.key) {
			t.Errorf("-check with %s: exit %d, want 1 naming %s:\n%s", name, code, tc.key, out)
		}
	}
	if code, out := checkFile(t, bin, "[pop3]\nlisten = [\"localhost:0\", \"[::1]:0\"]\n"); code != 0 {
		t.Errorf("-check with localhost and [::1]: exit %d\n%s", code, out)
	}
}

// TestCheckSystemMethodWithoutPAM builds pop3d with the nopam tag and
// checks that -check refuses auth.method = "system" there, as the start
// would.
func TestCheckSystemMethodWithoutPAM(t *testing.T) {
	const text = "[auth]\nmethod = \"system\"\n"
	bin := pop3dtest.Binary(t, "pop3d")
	if pam.Available {
		if code, out := checkFile(t, bin, text); code != 0 {
			t.Errorf("-check of method system in a build with PAM: exit %d\n%s", code, out)
		}
		bin = filepath.Join(t.TempDir(), "pop3d-nopam")
		cmd := exec.Command("go", "build", "-tags", "nopam", "-o", bin, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build -tags nopam: %v\n%s", err, out)
		}
	}
	code, out := checkFile(t, bin, text)
	if code != 1 || !strings.Contains(out, "auth.method") || !strings.Contains(out, "PAM") {
		t.Fatalf("-check of method system in a build without PAM: exit %d, want 1 naming auth.method and PAM:\n%s", code, out)
	}
	if code, out := checkFile(t, bin, "[auth]\nmethod = \"passwordfile\"\n"); code != 0 {
		t.Fatalf("-check of method passwordfile without PAM: exit %d\n%s", code, out)
	}
}

func TestCheckDirectoryCACert(t *testing.T) {
	bin := pop3dtest.Binary(t, "pop3d")
	text := "[auth]\nmethod = \"directory\"\n[ldap]\nurl = \"ldap://127.0.0.1:389\"\nsearch_base = \"dc=example,dc=org\"\nca_cert = " +
		quote(filepath.Join(t.TempDir(), "absent.pem")) + "\n"
	code, out := checkFile(t, bin, text)
	if code != 1 || !strings.Contains(out, "ldap.ca_cert") {
		t.Fatalf("-check with an unreadable ldap.ca_cert: exit %d, want 1 naming it:\n%s", code, out)
	}
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"` }
