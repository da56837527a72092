package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// recMethod wraps a Method and records the addresses it was asked about.
type recMethod struct {
	Method
	asked     []store.Address
	challenge bool
	err       error // returned instead of asking Method when set
}

func (m *recMethod) Plaintext(ctx context.Context, a store.Address, pw string) error {
	m.asked = append(m.asked, a)
	if m.err != nil {
		return m.err
	}
	return m.Method.Plaintext(ctx, a, pw)
}
func (m *recMethod) Challenge() bool { return m.challenge }

type fakeMech struct{}

func (fakeMech) Next(context.Context, []byte) ([]byte, bool, error) { return nil, true, ErrAuthFailed }
func (fakeMech) Address() store.Address                             { return store.Address{} }

func newAuth(t *testing.T) (*Authenticator, *filestore.Store) {
	t.Helper()
	st, err := filestore.Open(filepath.Join(t.TempDir(), "root"), filestore.Options{
		Node: 1, Argon2: filestore.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.CreateDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ box, pw string }{{"tim", "tanstaaftanstaaf"}, {"mrose", "tanstaaf"}, {"nopw", ""}} {
		if err := st.CreateMailbox(ctx, store.Address{Mailbox: u.box, Domain: "example.com"}, u.pw); err != nil {
			t.Fatal(err)
		}
	}
	return &Authenticator{
		Method:        PasswordFile{Store: st},
		Store:         st,
		DefaultDomain: "example.com",
		Hostname:      "pop.example.com",
		Extra:         map[string]func() Mechanism{"NTLM": func() Mechanism { return fakeMech{} }},
	}, st
}

func TestDigestsRFCExamples(t *testing.T) {
	// RFC 1939 section 7.
	if got, want := APOPDigest("<1896.697170952@dbc.mtview.ca.us>", []byte("tanstaaf")), "c4c9334bac560ecc979e58001b3e22fb"; got != want {
		t.Errorf("APOPDigest = %s, want %s", got, want)
	}
	// RFC 2195 section 2.
	if got, want := CRAMMD5Digest("<1896.697170952@postoffice.reston.mci.net>", []byte("tanstaaftanstaaf")), "b913a602c7eda7a495b4e6e7334d3890"; got != want {
		t.Errorf("CRAMMD5Digest = %s, want %s", got, want)
	}
}

func TestPasswordFile(t *testing.T) {
	a, _ := newAuth(t)
	if a.Method.Name() != "passwordfile" || !a.Method.Challenge() {
		t.Fatalf("PasswordFile: name %q challenge %v", a.Method.Name(), a.Method.Challenge())
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, pw string
		ok       bool
	}{
		{"mrose@example.com", "tanstaaf", true},
		{"MRose", "tanstaaf", true}, // default domain, case folded
		{"mrose@example.com", "tanstaaF", false},
		{"mrose@example.com", "", false},
		{"nobody@example.com", "tanstaaf", false},
		{"mrose@nowhere.example", "tanstaaf", false},
		{"../../etc/passwd", "x", false},
		{"", "x", false},
		{"nopw@example.com", "", false},
	} {
		addr, err := a.Plaintext(ctx, tc.name, tc.pw)
		if tc.ok && (err != nil || addr.String() != "mrose@example.com") {
			t.Errorf("Plaintext(%q) = %v, %v; want mrose@example.com", tc.name, addr, err)
		}
		if !tc.ok && !errors.Is(err, ErrAuthFailed) {
			t.Errorf("Plaintext(%q, %q) = %v, want ErrAuthFailed", tc.name, tc.pw, err)
		}
	}
}

func TestInvalidNameSpendsAVerification(t *testing.T) {
	a, _ := newAuth(t)
	rm := &recMethod{Method: a.Method, challenge: true}
	a.Method = rm
	_, err := a.Plaintext(context.Background(), "../../etc/passwd", "pw")
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("err = %v", err)
	}
	if len(rm.asked) != 1 || rm.asked[0] != dummyAddress {
		t.Fatalf("method asked %v, want one check of the dummy address", rm.asked)
	}
	// A store outage is reported as such even for an invalid name.
	rm.err = fmt.Errorf("%w: ldap down", ErrUnavailable)
	if _, err := a.Plaintext(context.Background(), "a@@b", "pw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("outage: err = %v, want ErrUnavailable", err)
	}
}

func TestAPOP(t *testing.T) {
	a, _ := newAuth(t)
	ctx := context.Background()
	ts := "<1896.697170952@dbc.mtview.ca.us>"
	good := "c4c9334bac560ecc979e58001b3e22fb"
	if addr, err := a.APOP(ctx, "mrose", ts, good); err != nil || addr.Mailbox != "mrose" {
		t.Fatalf("APOP RFC example = %v, %v", addr, err)
	}
	if _, err := a.APOP(ctx, "mrose@example.com", ts, "C4C9334BAC560ECC979E58001B3E22FB"); err != nil {
		t.Fatalf("upper-case digest: %v", err)
	}
	for _, tc := range []struct{ name, digest string }{
		{"mrose", "c4c9334bac560ecc979e58001b3e22fc"},
		{"mrose", "c4c9334b"},
		{"nobody", good},
		{"nopw", good},
		{"../../etc/passwd", good},
	} {
		if _, err := a.APOP(ctx, tc.name, ts, tc.digest); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("APOP(%q, %q) = %v, want ErrAuthFailed", tc.name, tc.digest, err)
		}
	}
	a.Method = &recMethod{Method: a.Method, challenge: false}
	if _, err := a.APOP(ctx, "mrose", ts, good); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("APOP without challenge secrets = %v, want ErrAuthFailed", err)
	}
}

func TestMechanismsOffered(t *testing.T) {
	a, _ := newAuth(t)
	for _, tc := range []struct {
		challenge, tls, spa bool
		want                []string
	}{
		{true, false, false, []string{"PLAIN", "LOGIN", "CRAM-MD5", "NTLM"}},
		{true, false, true, []string{"CRAM-MD5", "NTLM"}},
		{true, true, true, []string{"PLAIN", "LOGIN", "CRAM-MD5", "NTLM"}},
		{false, false, false, []string{"PLAIN", "LOGIN"}},
		{false, false, true, nil},
		{false, true, true, []string{"PLAIN", "LOGIN"}},
	} {
		a.Method = &recMethod{Method: PasswordFile{}, challenge: tc.challenge}
		got := a.Mechanisms(tc.tls, tc.spa)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Mechanisms(challenge=%v, tls=%v, spa=%v) = %v, want %v", tc.challenge, tc.tls, tc.spa, got, tc.want)
		}
		for _, m := range []string{"plain", "LOGIN", "cram-md5", "ntlm", "GSSAPI"} {
			_, ok := a.NewMechanism(m, tc.tls, tc.spa)
			if want := slices.Contains(tc.want, m) || slices.Contains(tc.want, upper(m)); ok != want {
				t.Errorf("NewMechanism(%q, challenge=%v, tls=%v, spa=%v) ok = %v, want %v", m, tc.challenge, tc.tls, tc.spa, ok, want)
			}
		}
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// exchange runs a mechanism over responses and returns the challenges and the final error.
func exchange(t *testing.T, m Mechanism, responses ...[]byte) ([]string, error) {
	t.Helper()
	var challenges []string
	for i, r := range responses {
		ch, done, err := m.Next(context.Background(), r)
		if done {
			if i != len(responses)-1 {
				t.Fatalf("exchange ended after response %d of %d: %v", i+1, len(responses), err)
			}
			return challenges, err
		}
		challenges = append(challenges, string(ch))
	}
	t.Fatalf("exchange not done after %d responses (challenges %q)", len(responses), challenges)
	return nil, nil
}

func TestPLAIN(t *testing.T) {
	a, _ := newAuth(t)
	mk := func() Mechanism { m, _ := a.NewMechanism("PLAIN", false, false); return m }
	m := mk()
	if _, err := exchange(t, m, []byte("\x00mrose@example.com\x00tanstaaf")); err != nil || m.Address().Mailbox != "mrose" {
		t.Fatalf("PLAIN = %v, %v", m.Address(), err)
	}
	m = mk()
	ch, err := exchange(t, m, nil, []byte("mrose\x00mrose\x00tanstaaf"))
	if err != nil || !slices.Equal(ch, []string{""}) {
		t.Fatalf("PLAIN without initial response: challenges %q, err %v", ch, err)
	}
	m = mk()
	if _, err := exchange(t, m, []byte("mrose@example.com\x00mrose\x00tanstaaf")); err != nil {
		t.Fatalf("authzid naming the same mailbox: %v", err)
	}
	for _, bad := range []string{
		"\x00mrose\x00wrong",
		"tim@example.com\x00mrose\x00tanstaaf", // authzid differs (RFC 4616: no proxying)
		"\x00mrose",
		"mrose\x00tanstaaf",
		"\x00\x00tanstaaf",
		"a\x00b\x00c\x00d",
		"",
	} {
		if _, err := exchange(t, mk(), []byte(bad)); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("PLAIN %q = %v, want ErrAuthFailed", bad, err)
		}
	}
}

func TestLOGIN(t *testing.T) {
	a, _ := newAuth(t)
	mk := func() Mechanism { m, _ := a.NewMechanism("login", false, false); return m }
	m := mk()
	ch, err := exchange(t, m, nil, []byte("mrose"), []byte("tanstaaf"))
	if err != nil || !slices.Equal(ch, []string{"Username:", "Password:"}) || m.Address().Mailbox != "mrose" {
		t.Fatalf("LOGIN: challenges %q, %v, %v", ch, m.Address(), err)
	}
	m = mk()
	ch, err = exchange(t, m, []byte("mrose@example.com"), []byte("tanstaaf"))
	if err != nil || !slices.Equal(ch, []string{"Password:"}) {
		t.Fatalf("LOGIN with initial response: challenges %q, %v", ch, err)
	}
	if _, err := exchange(t, mk(), nil, []byte("mrose"), []byte("nope")); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("LOGIN wrong password = %v", err)
	}
}

func TestCRAMMD5(t *testing.T) {
	a, _ := newAuth(t)
	m, ok := a.NewMechanism("CRAM-MD5", false, true)
	if !ok {
		t.Fatal("CRAM-MD5 not offered")
	}
	ch, done, err := m.Next(context.Background(), nil)
	if done || err != nil || len(ch) < 10 || ch[0] != '<' || ch[len(ch)-1] != '>' {
		t.Fatalf("first challenge %q done %v err %v", ch, done, err)
	}
	// Replay RFC 2195's example exchange with its fixed challenge.
	m.(*cramMech).challenge = "<1896.697170952@postoffice.reston.mci.net>"
	resp, _ := base64.StdEncoding.DecodeString("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw")
	if _, done, err := m.Next(context.Background(), resp); !done || err != nil || m.Address().String() != "tim@example.com" {
		t.Fatalf("RFC 2195 example: done %v err %v addr %v", done, err, m.Address())
	}
	// Two challenges differ.
	m1, _ := a.NewMechanism("CRAM-MD5", false, false)
	m2, _ := a.NewMechanism("CRAM-MD5", false, false)
	c1, _, _ := m1.Next(context.Background(), nil)
	c2, _, _ := m2.Next(context.Background(), nil)
	if string(c1) == string(c2) {
		t.Fatalf("two CRAM-MD5 challenges are equal: %s", c1)
	}
	good := "tim " + CRAMMD5Digest(string(c1), []byte("tanstaaftanstaaf"))
	for _, bad := range []string{
		"tim " + CRAMMD5Digest(string(c2), []byte("tanstaaftanstaaf")), // replay of another challenge
		"nobody " + CRAMMD5Digest(string(c1), []byte("tanstaaftanstaaf")),
		"nopw " + CRAMMD5Digest(string(c1), []byte("")),
		"tim",
		"",
	} {
		m, _ := a.NewMechanism("CRAM-MD5", false, false)
		m.Next(context.Background(), nil)
		m.(*cramMech).challenge = string(c1)
		if _, done, err := m.Next(context.Background(), []byte(bad)); !done || !errors.Is(err, ErrAuthFailed) {
			t.Errorf("CRAM-MD5 %q: done %v err %v, want ErrAuthFailed", bad, done, err)
		}
	}
	if _, done, err := m1.Next(context.Background(), []byte(good)); !done || err != nil {
		t.Fatalf("CRAM-MD5 good response: %v", err)
	}
	if _, _, err := m1.Next(context.Background(), []byte(good)); !errors.Is(err, ErrExchangeOver) {
		t.Fatalf("Next after the end = %v", err)
	}
	// An initial response is refused: the server speaks first.
	m3, _ := a.NewMechanism("CRAM-MD5", false, false)
	if _, done, err := m3.Next(context.Background(), []byte(good)); !done || !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("CRAM-MD5 initial response: done %v err %v", done, err)
	}
}

func FuzzSASLDecoders(f *testing.F) {
	f.Add("PLAIN", []byte("\x00mrose\x00tanstaaf"))
	f.Add("LOGIN", []byte("mrose"))
	f.Add("CRAM-MD5", []byte("tim b913a602c7eda7a495b4e6e7334d3890"))
	a := &Authenticator{
		Method:        &recMethod{Method: PasswordFile{}, challenge: true, err: ErrAuthFailed},
		DefaultDomain: "example.com",
		Hostname:      "h",
	}
	f.Fuzz(func(t *testing.T, mech string, resp []byte) {
		m, ok := a.NewMechanism(mech, true, false)
		if !ok {
			return
		}
		for i := 0; i < 4; i++ {
			_, done, err := m.Next(context.Background(), resp)
			if done {
				if err == nil {
					t.Fatalf("%s accepted %q with a method that refuses everything", mech, resp)
				}
				return
			}
		}
	})
}

// TestAPOPNeedsATimestamp: without the greeting's timestamp the APOP
// digest is MD5(password), the same on every connection, so a digest seen
// once could be replayed forever. The Authenticator refuses it itself, not
// only through the session's check. An empty digest never matches.
func TestAPOPNeedsATimestamp(t *testing.T) {
	a, _ := newAuth(t)
	ctx := context.Background()
	static := APOPDigest("", []byte("tanstaaf"))
	if _, err := a.APOP(ctx, "mrose", "", static); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("APOP with an empty timestamp = %v, want ErrAuthFailed", err)
	}
	if _, err := a.APOP(ctx, "mrose", "<1.2@h>", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("APOP with an empty digest = %v, want ErrAuthFailed", err)
	}
}

// slowKnown is a method that answers a known user after a real check
// (slow) and an unknown one at once, as some system or directory setups
// do.
type slowKnown struct{ known string }

func (slowKnown) Name() string    { return "system" }
func (slowKnown) Challenge() bool { return false }
func (m slowKnown) Plaintext(_ context.Context, a store.Address, pw string) error {
	if a.String() != m.known {
		return ErrAuthFailed
	}
	time.Sleep(60 * time.Millisecond) // the cost of a real check: part of the scenario, waits for nothing
	if pw != "right" {
		return ErrAuthFailed
	}
	return nil
}

// TestUnknownUserPaddedToRealCheck: a method that answers unknown users
// faster does not reveal which accounts exist through the reply time.
func TestUnknownUserPaddedToRealCheck(t *testing.T) {
	a := &Authenticator{Method: slowKnown{known: "alice@example.com"}}
	ctx := context.Background()
	if _, err := a.Plaintext(ctx, "alice@example.com", "wrong"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	start := time.Now()
	if _, err := a.Plaintext(ctx, "nobody@example.com", "wrong"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("unknown user: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("unknown user answered in %v, a real check takes 60ms", d)
	}
	// A correct login is never padded.
	if _, pad, err := a.Check(ctx, PasswordCheck{Name: "alice@example.com", Password: "right"}); err != nil || pad != 0 {
		t.Fatalf("right password: pad %v, %v; want no pad and no error", pad, err)
	}
}
