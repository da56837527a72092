package filestore

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pop3svc/pop3svc/store/credential"
	"github.com/pop3svc/pop3svc/store/durable"
)

// KeySize is the store key's size in octets (AES-256).
const KeySize = credential.KeySize

// loadOrCreateKey returns the store key, creating it on first open. The
// new key is written in full to a temporary file and then linked to its
// name; link fails when the name exists, so of two servers racing to
// create the key exactly one wins and both then read the winner's key.
func loadOrCreateKey(meta, tmp string) ([]byte, error) {
	path := filepath.Join(meta, KeyFile)
	for attempt := 0; attempt < 2; attempt++ {
		key, err := readKey(path)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		var raw [KeySize]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, err
		}
		text := []byte(hex.EncodeToString(raw[:]) + "\n")
		t := filepath.Join(tmp, "key."+randomString())
		f, err := os.OpenFile(t, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("cannot create the store key: %w", err)
		}
		_, err = f.Write(text)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Link(t, path)
		}
		_ = os.Remove(t)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cannot create the store key: %w", err)
		}
		if err == nil {
			if err := durable.SyncDir(meta); err != nil {
				return nil, err
			}
		}
	}
	return readKey(path)
}

func readKey(path string) ([]byte, error) {
	b, err := durable.ReadSmall(path, 4*KeySize)
	if err != nil {
		return nil, err
	}
	key, err := credential.ParseKey(string(bytes.TrimSpace(b)))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", path, err)
	}
	return key, nil
}
