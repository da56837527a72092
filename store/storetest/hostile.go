package storetest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	//lint:ignore SA1019 the NT hash is MD4 ([MS-NLMP] 3.3.1)
	"golang.org/x/crypto/md4"

	"github.com/pop3svc/pop3svc/store"
)

// HostileNames lists names that every store must refuse with ErrInvalidName.
var HostileNames = []store.Address{
	{Mailbox: "..", Domain: "example.com"},
	{Mailbox: ".", Domain: "example.com"},
	{Mailbox: "a/b", Domain: "example.com"},
	{Mailbox: "../../etc", Domain: "example.com"},
	{Mailbox: `a\b`, Domain: "example.com"},
	{Mailbox: "a\x00b", Domain: "example.com"},
	{Mailbox: "", Domain: "example.com"},
	{Mailbox: "a b", Domain: "example.com"},
	{Mailbox: "tab\t", Domain: "example.com"},
	{Mailbox: "nl\n", Domain: "example.com"},
	{Mailbox: "del\x7f", Domain: "example.com"},
	{Mailbox: "bad\xffutf8", Domain: "example.com"},
	{Mailbox: strings.Repeat("m", 64), Domain: "example.com"},
	{Mailbox: "alice", Domain: ".."},
	{Mailbox: "alice", Domain: "."},
	{Mailbox: "alice", Domain: ""},
	{Mailbox: "alice", Domain: "../x"},
	{Mailbox: "alice", Domain: "a/b"},
	{Mailbox: "alice", Domain: `a\b`},
	{Mailbox: "alice", Domain: "a\x00b"},
	{Mailbox: "alice", Domain: ".pop3"},
	{Mailbox: "alice", Domain: "-a.com"},
	{Mailbox: "alice", Domain: "a..com"},
	{Mailbox: "alice", Domain: "a_b.com"},
	{Mailbox: "alice", Domain: "exämple.com"},
	{Mailbox: "alice", Domain: strings.Repeat("a", 63) + "." + strings.Repeat("b.", 120) + "com"},
	{Mailbox: "alice", Domain: strings.Repeat("a", 300)},
}

func init() {
	for _, c := range `@()/\[]:;,".*=|?+` {
		HostileNames = append(HostileNames, store.Address{Mailbox: "a" + string(c) + "b", Domain: "example.com"})
	}
}

// testHostileNames: every call refuses every hostile name, and the refusals
// change nothing that the API shows.
func testHostileNames(t *testing.T, s store.Store) {
	setup(t, s, "alice")
	before := listAll(t, s)
	refuseHostileNames(t, s)
	if after := listAll(t, s); !slices.Equal(before, after) {
		t.Fatalf("hostile names changed the store:\nbefore %q\nafter  %q", before, after)
	}
	// Upper case is folded, not refused.
	wantErr(t, "CreateMailbox(upper)", s.CreateMailbox(ctx, addr("BoB", "EXAMPLE.com"), "x"), nil)
	if _, err := s.Mailbox(ctx, addr("bob", "example.com")); err != nil {
		t.Fatalf("Mailbox(bob) after CreateMailbox(BoB@EXAMPLE.com): %v", err)
	}
	// Unicode mailbox names are allowed (no forbidden character).
	wantErr(t, "CreateMailbox(unicode)", s.CreateMailbox(ctx, addr("jürgen", "example.com"), "x"), nil)
	wantErr(t, "VerifyPassword(unicode)", s.VerifyPassword(ctx, addr("jürgen", "example.com"), "x"), nil)
}

// testFilesHostileNames: refusing hostile names creates nothing under the
// mail root or beside it.
func testFilesHostileNames(t *testing.T, s store.Store) {
	if s.Root() == "" {
		t.Fatal("a store with the Files capability has no mail root")
	}
	setup(t, s, "alice")
	before := listTree(t, s.Root())
	refuseHostileNames(t, s)
	if after := listTree(t, s.Root()); !slices.Equal(before, after) {
		t.Fatalf("hostile names changed the mail root:\nbefore %q\nafter  %q", before, after)
	}
	// Nothing may appear beside the mail root either.
	parent := filepath.Dir(s.Root())
	for _, n := range []string{"etc", "x", "a"} {
		if _, err := os.Lstat(filepath.Join(parent, n)); err == nil {
			t.Fatalf("a hostile name created %s beside the mail root", n)
		}
	}
}

// listAll lists every domain and mailbox with what the API shows of them.
func listAll(t *testing.T, s store.Store) []string {
	t.Helper()
	ds, err := s.ListDomains(ctx)
	wantErr(t, "ListDomains", err, nil)
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%+v", d))
		mbs, err := s.ListMailboxes(ctx, d.Name)
		wantErr(t, "ListMailboxes("+d.Name+")", err, nil)
		for _, mb := range mbs {
			out = append(out, fmt.Sprintf("%+v", mb))
		}
	}
	return out
}

func refuseHostileNames(t *testing.T, s store.Store) {
	t.Helper()
	for _, h := range HostileNames {
		what := fmt.Sprintf("%q@%q", h.Mailbox, h.Domain)
		wantErr(t, "CreateMailbox("+what+")", s.CreateMailbox(ctx, h, "x"), store.ErrInvalidName)
		if h.Mailbox == "alice" {
			wantErr(t, "CreateDomain("+what+")", s.CreateDomain(ctx, h.Domain), store.ErrInvalidName)
			wantErr(t, "DeleteDomain("+what+")", s.DeleteDomain(ctx, h.Domain, true), store.ErrInvalidName)
			wantErr(t, "LockDomain("+what+")", s.LockDomain(ctx, h.Domain), store.ErrInvalidName)
			wantErr(t, "UnlockDomain("+what+")", s.UnlockDomain(ctx, h.Domain), store.ErrInvalidName)
			_, err := s.Domain(ctx, h.Domain)
			wantErr(t, "Domain("+what+")", err, store.ErrInvalidName)
			_, err = s.ListMailboxes(ctx, h.Domain)
			wantErr(t, "ListMailboxes("+what+")", err, store.ErrInvalidName)
		}
		_, err := s.Deliver(ctx, h, strings.NewReader("x\r\n"))
		wantErr(t, "Deliver("+what+")", err, store.ErrInvalidName)
		_, err = s.OpenSession(ctx, h, "t")
		wantErr(t, "OpenSession("+what+")", err, store.ErrInvalidName)
		wantErr(t, "DeleteMailbox("+what+")", s.DeleteMailbox(ctx, h), store.ErrInvalidName)
		wantErr(t, "RenameMailbox("+what+")", s.RenameMailbox(ctx, h, "x"), store.ErrInvalidName)
		if h.Domain == "example.com" {
			wantErr(t, "RenameMailbox(alice -> "+what+")", s.RenameMailbox(ctx, addr("alice", "example.com"), h.Mailbox), store.ErrInvalidName)
		}
		wantErr(t, "SetPassword("+what+")", s.SetPassword(ctx, h, "x"), store.ErrInvalidName)
		wantErr(t, "VerifyPassword("+what+")", s.VerifyPassword(ctx, h, "x"), store.ErrAuthFailed)
		_, err = s.Secret(ctx, h, store.SecretPassword)
		wantErr(t, "Secret("+what+")", err, store.ErrAuthFailed)
		wantErr(t, "SetQuota("+what+")", s.SetQuota(ctx, h, 5), store.ErrInvalidName)
		_, err = s.Quota(ctx, h)
		wantErr(t, "Quota("+what+")", err, store.ErrInvalidName)
		_, _, err = s.Usage(ctx, h)
		wantErr(t, "Usage("+what+")", err, store.ErrInvalidName)
		_, err = s.Mailbox(ctx, h)
		wantErr(t, "Mailbox("+what+")", err, store.ErrInvalidName)
		wantErr(t, "LockMailbox("+what+")", s.LockMailbox(ctx, h), store.ErrInvalidName)
		wantErr(t, "UnlockMailbox("+what+")", s.UnlockMailbox(ctx, h), store.ErrInvalidName)
	}
}

// listTree lists every path under root.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

func testPasswordNotInClear(t *testing.T, s store.Store) {
	if s.Root() == "" {
		t.Fatal("a store with the Files capability has no mail root")
	}
	const pw = "Tr0ub4dor&3-unique-password"
	setup(t, s)
	a := addr("alice", "example.com")
	wantErr(t, "CreateMailbox", s.CreateMailbox(ctx, a, pw), nil)
	wantErr(t, "CreateMailbox(bob)", s.CreateMailbox(ctx, addr("bob", "example.com"), ""), nil)
	wantErr(t, "SetPassword(bob)", s.SetPassword(ctx, addr("bob", "example.com"), pw), nil)
	wantErr(t, "RenameMailbox", s.RenameMailbox(ctx, addr("bob", "example.com"), "robert"), nil)
	ms, err := s.OpenSession(ctx, a, "t")
	wantErr(t, "OpenSession", err, nil)
	defer ms.Close()
	wantErr(t, "VerifyPassword", s.VerifyPassword(ctx, a, pw), nil)
	h := md4.New()
	h.Write(utf16le(pw))
	nt := h.Sum(nil) // the NT hash is as good as the password for NTLM
	needles := [][]byte{[]byte(pw), []byte(strings.ToLower(pw)), utf16le(pw), []byte(hex.EncodeToString([]byte(pw))),
		nt, []byte(hex.EncodeToString(nt)), []byte(base64.StdEncoding.EncodeToString(nt)), []byte(base64.StdEncoding.EncodeToString([]byte(pw)))}
	for _, p := range listTree(t, s.Root()) {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(bytes.ToLower(b), bytes.ToLower(n)) {
				t.Fatalf("the password appears in clear in %s", p)
			}
		}
	}
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r), byte(r>>8))
	}
	return b
}
