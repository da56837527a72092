package credential

import (
	"context"
	"errors"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// With NoReversible a new record keeps no sealed secret but its hash and
// SCRAM keys; a record with one is not current, so the stores rewrite it
// at its next login, and a record without one is not current once sealed
// secrets are wanted again.
func TestNoReversible(t *testing.T) {
	ctx := context.Background()
	keep := HashParams{Argon2: cheap}
	drop := HashParams{Argon2: cheap, NoReversible: true}
	h, err := NewHasher(drop, 1)
	if err != nil {
		t.Fatal(err)
	}
	key := NewKey()
	a := store.Address{Mailbox: "alice", Domain: "example.com"}
	r, err := h.New(ctx, key, a, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Sealed) != 0 || len(r.Nonce) != 0 {
		t.Fatalf("a record made without reversible secrets has sealed %x nonce %x", r.Sealed, r.Nonce)
	}
	for _, kind := range []store.SecretKind{store.SecretPassword, store.SecretNTHash} {
		if _, err := r.Secret(key, a, kind); !errors.Is(err, store.ErrNoSecret) {
			t.Errorf("Secret(%d) = %v, want ErrNoSecret", kind, err)
		}
	}
	if _, err := r.Secret(key, a, store.SecretSCRAMSHA256); err != nil {
		t.Errorf("Secret(SCRAM) = %v", err)
	}
	if err := h.Verify(ctx, r, "s3cret"); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if h.NeedsUpgrade(r) || !r.Current(drop.Normal()) || r.Current(keep.Normal()) {
		t.Fatal("a record without sealed secrets: current without them, not current with them")
	}

	if err := h.SetParams(keep); err != nil {
		t.Fatal(err)
	}
	sealed, err := h.New(ctx, key, a, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed.Sealed) == 0 || !sealed.Current(keep.Normal()) {
		t.Fatal("a record made with reversible secrets has none, or is not current")
	}
	if err := h.SetParams(drop); err != nil {
		t.Fatal(err)
	}
	if !h.NeedsUpgrade(sealed) {
		t.Fatal("a sealed record needs no rewrite once reversible secrets are off")
	}
}
