package credential

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

var cheap = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}

func newHasher(t *testing.T) *Hasher {
	t.Helper()
	h, err := NewHasher(HashParams{Argon2: cheap}, 2)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestNTHash(t *testing.T) {
	// MS-NLMP 4.2.2.1.2: NTOWFv1("Password").
	if got := hex.EncodeToString(NTHash("Password")); got != "a4f49c406510bdcab6824ee7c30fd852" {
		t.Fatalf("NTHash(Password) = %s", got)
	}
}

func TestRecord(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t)
	key := NewKey()
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	b := store.Address{Mailbox: "bob", Domain: "example.com"}
	r, err := h.New(ctx, key, a, "päss wörd")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Verify(ctx, r, "päss wörd"); err != nil {
		t.Fatalf("Verify(right) = %v", err)
	}
	for _, wrong := range []string{"", "päss wörd ", "PÄSS WÖRD", strings.Repeat("x", MaxPasswordLen+1)} {
		if err := h.Verify(ctx, r, wrong); !errors.Is(err, store.ErrAuthFailed) {
			t.Fatalf("Verify(%.20q) = %v, want ErrAuthFailed", wrong, err)
		}
	}
	if err := h.Verify(ctx, nil, "päss wörd"); !errors.Is(err, store.ErrAuthFailed) {
		t.Fatalf("Verify(no record) = %v, want ErrAuthFailed", err)
	}
	if sec, err := r.Secret(key, a, store.SecretPassword); err != nil || string(sec) != "päss wörd" {
		t.Fatalf("Secret(password) = %q, %v", sec, err)
	}
	if _, err := r.Secret(key, b, store.SecretPassword); err == nil {
		t.Fatal("a record opened for another mailbox")
	}
	if _, err := r.Secret(NewKey(), a, store.SecretPassword); err == nil {
		t.Fatal("a record opened with another key")
	}
	if _, err := r.Secret(key, a, store.SecretKind(99)); !errors.Is(err, store.ErrNoSecret) {
		t.Fatalf("Secret(unknown kind) = %v, want ErrNoSecret", err)
	}
	moved, err := r.Reseal(key, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if nt, err := moved.Secret(key, b, store.SecretNTHash); err != nil || string(nt) != string(NTHash("päss wörd")) {
		t.Fatalf("Secret(NT hash) after Reseal = %x, %v", nt, err)
	}
	if err := h.Verify(ctx, moved, "päss wörd"); err != nil {
		t.Fatalf("Verify after Reseal = %v", err)
	}
	if moved.Digest() != r.Digest() {
		t.Fatal("Reseal changed the digest of an unchanged password")
	}
	if _, err := h.New(ctx, key, a, strings.Repeat("x", MaxPasswordLen+1)); err == nil {
		t.Fatal("New accepted a password longer than MaxPasswordLen")
	}
}

func TestDecode(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t)
	key := NewKey()
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	r, _ := h.New(ctx, key, a, "pw")
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil || h.Verify(ctx, back, "pw") != nil {
		t.Fatalf("Decode(Encode(r)) = %v", err)
	}
	for _, bad := range []string{
		"{garbage",
		`{"v":2,"alg":"argon2id"}`,
		`{"v":1,"alg":"argon2id","params":{"Time":1000000,"MemoryKiB":4000000000,"Threads":1,"KeyLen":32},"salt":"AAAAAAAAAAAAAAAAAAAAAA==","hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%.40q) succeeded", bad)
		}
	}
}

func TestNewHasherChecks(t *testing.T) {
	if _, err := NewHasher(HashParams{Argon2: Argon2Params{Time: 1, MemoryKiB: 1, Threads: 1, KeyLen: 32}}, 1); err == nil {
		t.Error("NewHasher accepted 1 KiB of memory")
	}
	if _, err := NewHasher(HashParams{Argon2: cheap}, 0); err == nil {
		t.Error("NewHasher accepted no slots")
	}
}

func TestVerifyWaitsForASlot(t *testing.T) {
	h, err := NewHasher(HashParams{Argon2: cheap}, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.slots <- struct{}{} // every slot busy
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Verify(ctx, nil, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with every slot busy and an ended context = %v", err)
	}
}

// Passwords are compared in PRECIS OpaqueString form (RFC 8265): the same
// password typed in another Unicode normalization form, or with a
// no-break space, is the same password.
func TestNormalizedPasswords(t *testing.T) {
	nfc, nfd := "p\u00e4ssw\u00f6rd", "pa\u0308sswo\u0308rd"
	if NormalizePassword(nfd) != nfc || NormalizePassword("a\u00a0b\u00e9") != "a b\u00e9" || NormalizePassword("plain ascii") != "plain ascii" {
		t.Fatalf("NormalizePassword: %q %q", NormalizePassword(nfd), NormalizePassword("a\u00a0b\u00e9"))
	}
	h, err := NewHasher(HashParams{Argon2: Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	r, err := h.New(context.Background(), NewKey(), a, nfd)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Verify(context.Background(), r, nfc); err != nil {
		t.Fatalf("the NFC form of an NFD password: %v", err)
	}
	if err := h.Verify(context.Background(), r, "passwoerd"); err == nil {
		t.Fatal("another password passed")
	}
}
