package auth

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/session"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/credential"
)

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// The keys the password file keeps give the proofs of RFC 7677 section 3.
func TestSCRAMKeysRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	k := credential.NewSCRAMKeys("pencil", salt, 4096)
	authMsg := "n=user,r=rOprNGfwEbeRWgbNEkqO," +
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	sig := mac(k.StoredKey, authMsg)
	ck := make([]byte, len(sig))
	for i := range sig {
		ck[i] = proof[i] ^ sig[i]
	}
	if h := sha256.Sum256(ck); !hmac.Equal(h[:], k.StoredKey) {
		t.Fatal("the RFC 7677 client proof does not match the stored key")
	}
	if got := base64.StdEncoding.EncodeToString(mac(k.ServerKey, authMsg)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("server signature %s", got)
	}
}

// scramClient is a SCRAM-SHA-256 client written from RFC 5802 section 3.
type scramClient struct {
	user, pass string
	gs2        string // "n,," "y,," "p=tls-exporter,,"
	cbData     []byte
	nonce      string
	first      string
	serverSig  []byte
}

func (c *scramClient) clientFirst() []byte {
	c.first = "n=" + strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user) + ",r=" + c.nonce
	return []byte(c.gs2 + c.first)
}

func (c *scramClient) clientFinal(t *testing.T, serverFirst []byte) []byte {
	t.Helper()
	var r, s string
	iter := 0
	for _, f := range strings.Split(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(f, "r="):
			r = f[2:]
		case strings.HasPrefix(f, "s="):
			s = f[2:]
		case strings.HasPrefix(f, "i="):
			iter, _ = strconv.Atoi(f[2:])
		}
	}
	if !strings.HasPrefix(r, c.nonce) || len(r) == len(c.nonce) {
		t.Fatalf("server nonce %q does not extend %q", r, c.nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(s)
	if err != nil || iter < 4096 {
		t.Fatalf("server-first %q", serverFirst)
	}
	salted, _ := pbkdf2.Key(sha256.New, c.pass, salt, iter, 32)
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...)) + ",r=" + r
	authMsg := c.first + "," + string(serverFirst) + "," + withoutProof
	sig := mac(stored[:], authMsg)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	c.serverSig = mac(mac(salted, "Server Key"), authMsg)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey))
}

func scramAuth(t *testing.T) *Authenticator {
	a, _ := newAuth(t)
	a.SCRAM = func() bool { return true }
	a.Method = &recMethod{Method: a.Method, challenge: true}
	return a
}

// run does the whole exchange; it returns the error of the step that ended it.
func (c *scramClient) run(t *testing.T, m Mechanism) error {
	t.Helper()
	ctx := context.Background()
	sf, done, err := m.Next(ctx, c.clientFirst())
	if done {
		return err
	}
	final, done, err := m.Next(ctx, c.clientFinal(t, sf))
	if done {
		return err
	}
	if string(final) != "v="+base64.StdEncoding.EncodeToString(c.serverSig) {
		t.Fatalf("server-final %q does not prove the server knows the key", final)
	}
	_, done, err = m.Next(ctx, []byte{})
	if !done {
		t.Fatal("the exchange goes on after the server's final message")
	}
	return err
}

func TestSCRAMExchange(t *testing.T) {
	a := scramAuth(t)
	cb := &session.ChannelBinding{Exporter: []byte("0123456789abcdef0123456789abcdef"), ServerEndPoint: []byte("end point hash")}
	if got := strings.Join(a.SCRAMMechanisms(nil), " "); got != "SCRAM-SHA-256" {
		t.Fatalf("without TLS: %q", got)
	}
	if got := strings.Join(a.SCRAMMechanisms(cb), " "); got != "SCRAM-SHA-256 SCRAM-SHA-256-PLUS" {
		t.Fatalf("with TLS: %q", got)
	}
	if _, ok := a.NewSCRAM("SCRAM-SHA-256-PLUS", nil); ok {
		t.Fatal("-PLUS started without channel binding data")
	}
	newMech := func(name string, cb *session.ChannelBinding) Mechanism {
		m, ok := a.NewSCRAM(name, cb)
		if !ok {
			t.Fatalf("%s not offered", name)
		}
		return m
	}
	for _, c := range []struct {
		name, mech string
		cb         *session.ChannelBinding
		client     scramClient
		ok         bool
	}{
		{"good", "SCRAM-SHA-256", nil, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "n,,"}, true},
		{"default domain", "scram-sha-256", nil, scramClient{user: "tim", pass: "tanstaaftanstaaf", gs2: "n,,"}, true},
		{"wrong password", "SCRAM-SHA-256", nil, scramClient{user: "tim@example.com", pass: "tanstaaf", gs2: "n,,"}, false},
		{"unknown user", "SCRAM-SHA-256", nil, scramClient{user: "nobody@example.com", pass: "x", gs2: "n,,"}, false},
		{"no password", "SCRAM-SHA-256", nil, scramClient{user: "nopw@example.com", pass: "", gs2: "n,,"}, false},
		{"tls-exporter", "SCRAM-SHA-256-PLUS", cb, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "p=tls-exporter,,", cbData: cb.Exporter}, true},
		{"tls-server-end-point", "SCRAM-SHA-256-PLUS", cb, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "p=tls-server-end-point,,", cbData: cb.ServerEndPoint}, true},
		{"other channel", "SCRAM-SHA-256-PLUS", cb, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "p=tls-exporter,,", cbData: []byte("another TLS connection's data!!!")}, false},
		{"unknown binding", "SCRAM-SHA-256-PLUS", cb, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "p=tls-unique,,"}, false},
		{"-PLUS without binding", "SCRAM-SHA-256-PLUS", cb, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "n,,"}, false},
		{"binding without -PLUS", "SCRAM-SHA-256", cb, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "p=tls-exporter,,", cbData: cb.Exporter}, false},
		{"downgrade", "SCRAM-SHA-256", cb, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "y,,"}, false},
		{"y without -PLUS on offer", "SCRAM-SHA-256", nil, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "y,,"}, true},
		{"authzid", "SCRAM-SHA-256", nil, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "n,a=tim@example.com,"}, true},
		{"other authzid", "SCRAM-SHA-256", nil, scramClient{user: "tim@example.com", pass: "tanstaaftanstaaf", gs2: "n,a=mrose@example.com,"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.client.nonce = "fyko+d2lbbFgONRv9qkxdawL"
			m := newMech(c.mech, c.cb)
			err := c.client.run(t, m)
			switch {
			case c.ok && err != nil:
				t.Fatalf("failed: %v", err)
			case !c.ok && !errors.Is(err, ErrAuthFailed):
				t.Fatalf("err = %v, want ErrAuthFailed", err)
			case c.ok && m.Address() != (store.Address{Mailbox: "tim", Domain: "example.com"}):
				t.Fatalf("address %v", m.Address())
			}
		})
	}
}

// An unknown user gets a server-first message like a real one's, with the
// same salt every time.
func TestSCRAMUnknownUserLooksReal(t *testing.T) {
	a := scramAuth(t)
	first := func(user string) string {
		m, _ := a.NewSCRAM("SCRAM-SHA-256", nil)
		sf, done, err := m.Next(context.Background(), []byte("n,,n="+user+",r=abc"))
		if done || err != nil {
			t.Fatalf("%s: done %v err %v", user, done, err)
		}
		f := strings.Split(string(sf), ",")
		if len(f) != 3 || !strings.HasPrefix(f[0], "r=abc") || f[2] != "i=4096" {
			t.Fatalf("%s: server-first %q", user, sf)
		}
		return f[1]
	}
	if a, b := first("ghost@example.com"), first("ghost@example.com"); a != b {
		t.Fatal("an unknown user's salt changes between attempts")
	}
	if first("tim@example.com") == first("ghost@example.com") {
		t.Fatal("two users share a salt")
	}
}

// A mailbox whose record predates SCRAM keys (here a hash brought from
// elsewhere) fails SCRAM until a plaintext login upgrades it.
func TestSCRAMKeysComeWithPlaintextLogin(t *testing.T) {
	a := scramAuth(t)
	st := a.Store.(interface {
		SetPasswordHash(context.Context, store.Address, string) error
	})
	addr := store.Address{Mailbox: "mrose", Domain: "example.com"}
	if err := st.SetPasswordHash(context.Background(), addr, "$6$rounds=1000$9KqfL0aZ3x$rX6Vm4IfE1bnux.I9h1ed79W.sF6mBreUHTDr3ysL41RIN.cigqhmbz6Dt.F9QQ2W4oeFr3uMk9k6hzkO0XoM1"); err != nil {
		t.Fatal(err)
	}
	c := scramClient{user: "mrose@example.com", pass: "correct horse", gs2: "n,,", nonce: "n1"}
	m, _ := a.NewSCRAM("SCRAM-SHA-256", nil)
	if err := c.run(t, m); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("SCRAM before the upgrade: %v", err)
	}
	if _, err := a.Plaintext(context.Background(), "mrose@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	m, _ = a.NewSCRAM("SCRAM-SHA-256", nil)
	if err := c.run(t, m); err != nil {
		t.Fatalf("SCRAM after a plaintext login: %v", err)
	}
}

func TestSCRAMMalformed(t *testing.T) {
	a := scramAuth(t)
	for _, in := range []string{
		"", "n", "n,", "x,,n=tim,r=a", "n,,r=a", "n,,n=tim", "n,,n=tim,r=", "n,,m=ext,n=tim,r=a",
		"n,,n=t=2Xm,r=a", "n,,n=tim,r=a\x00", "p=,,n=tim,r=a", "p=bad name,,n=tim,r=a", "n,b=x,n=tim,r=a",
	} {
		m, _ := a.NewSCRAM("SCRAM-SHA-256", nil)
		if _, done, err := m.Next(context.Background(), []byte(in)); !done || !errors.Is(err, ErrAuthFailed) {
			t.Errorf("client-first %q: done %v err %v", in, done, err)
		}
	}
	for _, in := range []string{"", "c=biws", "c=biws,r=x", "c=biws,p=AAAA", "c=!!,r=x,p=AAAA", "c=biws,r=x,p=!!", "r=x,c=biws,p=AAAA"} {
		m, _ := a.NewSCRAM("SCRAM-SHA-256", nil)
		if _, done, err := m.Next(context.Background(), []byte("n,,n=tim,r=abc")); done || err != nil {
			t.Fatal(err)
		}
		if _, done, err := m.Next(context.Background(), []byte(in)); !done || !errors.Is(err, ErrAuthFailed) {
			t.Errorf("client-final %q: done %v err %v", in, done, err)
		}
	}
}

func FuzzSCRAMMessages(f *testing.F) {
	f.Add([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), []byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	f.Add([]byte("p=tls-exporter,a=x=2Cy,n=a=3Db,r=n,ext=1"), []byte("c=cD10bHMtZXhwb3J0ZXIsLA==,r=n,x=y,p="))
	f.Add([]byte("y,,n=,r=,"), []byte(",p=,p=,"))
	f.Fuzz(func(t *testing.T, first, final []byte) {
		if cf, err := parseClientFirst(first); err == nil {
			if cf.cbFlag != 'n' && cf.cbFlag != 'y' && cf.cbFlag != 'p' {
				t.Fatalf("flag %q accepted", cf.cbFlag)
			}
			if cf.nonce == "" || strings.Contains(cf.nonce, ",") || cf.user == "" {
				t.Fatalf("accepted %+v", cf)
			}
			if cf.gs2Header+cf.bare != string(first) {
				t.Fatalf("header %q + bare %q is not the message %q", cf.gs2Header, cf.bare, first)
			}
		}
		if cf, err := parseClientFinal(final); err == nil {
			if !strings.HasPrefix(string(final), cf.withoutProof+",p=") || cf.nonce == "" {
				t.Fatalf("accepted %+v", cf)
			}
		}
	})
}

// Login names in UTF-8 (RFC 6856): an IDN domain given as U-labels is the
// A-label domain the store keeps.
func TestResolveIDN(t *testing.T) {
	a := &Authenticator{DefaultDomain: "example.com"}
	for in, want := range map[string]string{
		"alice@b\u00fccher.example":   "alice@xn--bcher-kva.example",
		"alice@B\u00dcCHER.example":   "alice@xn--bcher-kva.example",
		"alice@xn--bcher-kva.example": "alice@xn--bcher-kva.example",
		"Tim":                         "tim@example.com",
	} {
		got, err := a.Resolve(in)
		if err != nil || got.String() != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := a.Resolve("alice@b\u00fccher\u200d.example"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("an invalid IDN: %v", err)
	}
}
