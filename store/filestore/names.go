package filestore

import (
	"encoding/hex"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/uid"
)

// UIDLen is the length of a message name's digits and of a UID.
const UIDLen = uid.Len

// isUID reports whether s is 26 ASCII digits.
func isUID(s []byte) bool { return uid.Valid(s) }

// An imported message whose old UIDL differs from its 26 digits carries
// the UIDL in its file name, as lower-case hexadecimal after a '-':
// P3_<26 digits>-<hex>.eml. The name is linked in one step, so the UIDL is
// exactly as durable as the message, and listing a mailbox reads no file.
const (
	uidlSep     = '-'
	maxHexUIDL  = 2 * store.MaxUIDLLen
	maxNameLen  = msgNameLen + 1 + maxHexUIDL
	minUIDLName = msgNameLen + 1 + 2
)

// parseMessageName splits a message file name into its 26 digits and its
// UID: the digits themselves, or the imported UIDL. ok is false for any
// other name. uidl aliases n for a plain name and is freshly decoded
// (into buf, which must hold store.MaxUIDLLen octets) for an imported one.
func parseMessageName(n []byte, buf []byte) (digits, uidl []byte, ok bool) {
	if len(n) < msgNameLen || len(n) > maxNameLen || string(n[:len(msgPrefix)]) != msgPrefix ||
		string(n[len(n)-len(msgSuffix):]) != msgSuffix {
		return nil, nil, false
	}
	digits = n[len(msgPrefix) : len(msgPrefix)+UIDLen]
	if !isUID(digits) {
		return nil, nil, false
	}
	if len(n) == msgNameLen {
		return digits, digits, true
	}
	h := n[len(msgPrefix)+UIDLen : len(n)-len(msgSuffix)]
	if len(n) < minUIDLName || h[0] != uidlSep || len(h)%2 != 1 {
		return nil, nil, false
	}
	h = h[1:]
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, nil, false // only the canonical lower-case form
		}
	}
	m, err := hex.Decode(buf[:len(h)/2], h)
	if err != nil || !store.ValidUIDL(string(buf[:m])) {
		return nil, nil, false
	}
	return digits, buf[:m], true
}

// messageName returns the file name of a message with the 26 digits name
// and the UID uidl ("" or name itself for a plain message).
func messageName(name, uidl string) string {
	if uidl == "" || uidl == name {
		return msgPrefix + name + msgSuffix
	}
	return msgPrefix + name + string(uidlSep) + hex.EncodeToString([]byte(uidl)) + msgSuffix
}

// isMessageName reports whether n is a message file name.
func isMessageName(n string) bool {
	var buf [store.MaxUIDLLen]byte
	_, _, ok := parseMessageName([]byte(n), buf[:])
	return ok
}
