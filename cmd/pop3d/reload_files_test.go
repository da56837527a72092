package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// TestReloadAppliesCertificate changes tls.cert, then tls.key, on a
// running pop3d and reads the certificate a new implicit-TLS connection
// is served: first a new certificate for the same key, then a new key
// with the certificate file rewritten in place for it (without the new
// key the reload would fail: the rewritten certificate does not match
// the old key).
func TestReloadAppliesCertificate(t *testing.T) {
	key1, key2 := newKey(t), newKey(t)
	c := reloadConfig(t, "", mailbox(0, 0))
	c.TLS = true
	c.Tables = "[tls]\ncert = \"a.pem\"\nkey = \"k1.pem\"\n"
	c.Prepare = func(dir string) {
		writeCert(t, filepath.Join(dir, "a.pem"), key1, 1001)
		writeKey(t, filepath.Join(dir, "k1.pem"), key1)
	}
	in := pop3dtest.Start(t, c)
	serial := func() string {
		d := &net.Dialer{Timeout: pop3dtest.DialTimeout}
		conn, err := tls.DialWithDialer(d, "tcp", in.POP3S, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != "1001" {
		t.Fatalf("at start the certificate's serial is %s, want 1001", got)
	}

	t.Run("tls.cert", func(t *testing.T) {
		writeCert(t, filepath.Join(in.Dir, "b.pem"), key1, 2002)
		if got := serial(); got != "1001" {
			t.Fatalf("before the change the serial is %s, want 1001", got)
		}
		setAndReload(t, in, "tls.cert", "b.pem")
		if got := serial(); got != "2002" {
			t.Fatalf("after set tls.cert b.pem and a reload the serial is %s, want 2002", got)
		}
	})
	t.Run("tls.key", func(t *testing.T) {
		writeKey(t, filepath.Join(in.Dir, "k2.pem"), key2)
		writeCert(t, filepath.Join(in.Dir, "b.pem"), key2, 3003)
		if got := serial(); got != "2002" {
			t.Fatalf("before the change the serial is %s, want 2002 (the files are read only on reload)", got)
		}
		setAndReload(t, in, "tls.key", "k2.pem")
		if got := serial(); got != "3003" {
			t.Fatalf("after set tls.key k2.pem and a reload the serial is %s, want 3003", got)
		}
	})
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeCert writes a self-signed certificate for key with the serial
// number serial to path.
func writeCert(t *testing.T, path string, key *ecdsa.PrivateKey, serial int64) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "mail.example.org"},
		DNSNames:     []string{"mail.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string, key *ecdsa.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadAppliesOutboundMarks changes the outbound marks of a stream
// read in chunks by the worker pool on a running pop3d: a TOP of all of
// one 48 MB message (a plaintext RETR that large goes from a goroutine of
// its own and queues nothing), read by a client whose small receive
// buffer keeps the kernel from taking much of it.
func TestReloadAppliesOutboundMarks(t *testing.T) {
	c := reloadConfig(t, "logging = 3", mailbox(1, 48<<20))
	in := pop3dtest.Start(t, c)
	runLiveCases(t, in, outboundCases(), func(i int) string { return "127.0.0.1" })
}

// topAll asks for all of message 1 with TOP: its body is streamed by
// the worker pool, through gnet's outbound buffer and its marks.
const topAll = "TOP 1 100000000\r\n"

func outboundCases() []liveCase {
	return []liveCase{
		// With the high mark at 32 MB, 16 MB go out to a client that
		// reads nothing before the stream pauses; at 256 KB it pauses
		// long before (the kernel's buffers take a few MB at most).
		{key: "limits.outbound_high_mark", value: "33554432", want: "16MB out before a pause", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c, _ := retrSlowly(t, in, ip)
			defer c.Close()
			sent, pauses := metric(t, in, "pop3_bytes_sent_total"), metric(t, in, "pop3_stream_pauses_total")
			io.WriteString(c, topAll)
			var got string
			pop3dtest.WaitFor(t, 60*time.Second, "16 MB sent or the stream paused", func() bool {
				switch {
				case metric(t, in, "pop3_bytes_sent_total") >= sent+16<<20:
					got = "16MB out before a pause"
				case metric(t, in, "pop3_stream_pauses_total") > pauses:
					got = "paused sooner"
				}
				return got != ""
			})
			return got
		}},
		// Paused at 24 MB, the stream resumes at a 20 MB low mark once
		// the client read 16 MB (the kernel's buffers hold a few MB of
		// them); at the default 64 KB it would wait for nearly all 24.
		{key: "limits.outbound_low_mark", value: "20971520", prep: [][2]string{{"limits.outbound_high_mark", "25165824"}}, noBefore: true, want: "resumed", probe: func(t *testing.T, in *pop3dtest.Server, ip string) string {
			c, r := retrSlowly(t, in, ip)
			defer c.Close()
			pauses, resumes := metric(t, in, "pop3_stream_pauses_total"), metric(t, in, "pop3_stream_resumes_total")
			io.WriteString(c, topAll)
			pop3dtest.WaitFor(t, 60*time.Second, "the stream to pause", func() bool {
				return metric(t, in, "pop3_stream_pauses_total") > pauses
			})
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			if _, err := io.CopyN(io.Discard, r, 16<<20); err != nil {
				t.Fatal(err)
			}
			if pop3dtest.Eventually(30*time.Second, func() bool { return metric(t, in, "pop3_stream_resumes_total") > resumes }) {
				return "resumed"
			}
			return "still paused"
		}},
	}
}

// retrSlowly logs in from ip over a connection with a small receive
// buffer, ready for a RETR or TOP the caller sends and reads at its own
// pace.
func retrSlowly(t *testing.T, in *pop3dtest.Server, ip string) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Timeout: pop3dtest.DialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Control: smallReceiveBuffer}
	c, err := d.Dial("tcp", in.POP3)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	io.WriteString(c, "USER "+testAddr.String()+"\r\nPASS "+testPassword+"\r\n")
	for range 3 {
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("login: %q %v", l, err)
		}
	}
	return c, r
}

// TestReloadAppliesLiveKeysIPv6 runs the cases that need IPv6 clients on
// a pop3d listening on ::1.
func TestReloadAppliesLiveKeysIPv6(t *testing.T) {
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		pop3dtest.Unavailable(t, "no IPv6 loopback: "+err.Error(), "(a kernel with IPv6)")
	} else {
		l.Close()
	}
	c := reloadConfig(t, "", mailbox(0, 0))
	c.Host = "::1"
	c.SMTPTable = "max_connections = 100\nmax_conns_per_ip = 50\nmax_conns_per_net = 0\nmax_conns_per_net48 = 0"
	in := pop3dtest.Start(t, c)
	runLiveCases(t, in, ipv6Cases(), func(i int) string { return "::1" })
}

func ipv6Cases() []liveCase {
	return []liveCase{
		// max_conns_per_ip and max_conns_per_net leave room: only the /48
		// limit refuses the second session from ::1.
		{key: "smtp.max_conns_per_net48", value: "1", want: "421", probe: secondSMTP},
	}
}
